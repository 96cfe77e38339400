import type { MessageDeleted, MessageEdited } from "@chat/shared";

// The room entries issue 19 added, as the client delivers them.

/** The room entries that change an earlier message; `id` names that message. */
export const AMEND_EVENTS = ["message_edited", "message_deleted"] as const;

/** Where an edit or a delete sits in the log: `logId` is its own id (the room's last id). */
interface Placed {
  logId: string;
  prev: string;
  ts: number;
}

/** A message's new text. */
export type MessageEditedEvent = MessageEdited & Placed;

/** A message was deleted: drop it. */
export type MessageDeletedEvent = MessageDeleted & Placed;
