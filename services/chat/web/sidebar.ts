// The sidebar (rooms and direct conversations, with unread badges) and the member list, from
// which a direct conversation starts.
import type { User } from "@chat/client";
import { nameOf, seen } from "./identity.js";
import { rooms, type RoomState } from "./room-state.js";

const roomList = document.getElementById("room-list") as HTMLUListElement;
const memberList = document.getElementById("members") as HTMLUListElement;

export interface SidebarActions {
  current(): RoomState | undefined;
  me(): string | undefined;
  open(state: RoomState): void;
  leave(state: RoomState): void;
  message(user: User): void;
}

const badgeText = (unread: number) => (unread > 99 ? "99+" : String(unread));

export function renderSidebar(actions: SidebarActions): void {
  const current = actions.current();
  roomList.replaceChildren(
    ...[...rooms.values()].map((state) => {
      const li = document.createElement("li");
      const open = Object.assign(document.createElement("button"), { type: "button", className: "open" });
      open.dataset.room = state.room;
      open.append(Object.assign(document.createElement("span"), { className: "label", textContent: state.label }));
      if (state.unread > 0 && state !== current) {
        const badge = Object.assign(document.createElement("span"), { className: "badge", textContent: badgeText(state.unread) });
        badge.setAttribute("aria-label", `${badgeText(state.unread)} unread`);
        open.append(badge);
      }
      open.setAttribute("aria-current", String(state === current));
      open.addEventListener("click", () => actions.open(state));
      const leave = Object.assign(document.createElement("button"), { type: "button", className: "leave", textContent: "×" });
      leave.setAttribute("aria-label", `Leave ${state.label}`);
      leave.addEventListener("click", () => actions.leave(state));
      li.append(open, leave);
      return li;
    }),
  );
}

export function renderMembers(actions: SidebarActions): void {
  const state = actions.current();
  const users = [...(state?.members.values() ?? [])];
  for (const user of users) seen(user);
  // A big room lists only its first members, and does not announce joins and leaves.
  const others = (state?.memberCount ?? 0) - users.length;
  const more = others > 0 ? [Object.assign(document.createElement("li"), { className: "more", textContent: `and ${others} more` })] : [];
  memberList.replaceChildren(
    ...users
      .sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id))
      .map((user) => {
        const li = nameOf(document.createElement("li"), user);
        if (user.id === actions.me()) return li;
        // The button's text comes from CSS (::after), so the item's text stays the name alone.
        const dm = Object.assign(document.createElement("button"), { type: "button", className: "dm" });
        dm.setAttribute("aria-label", `Message ${user.name} directly`);
        dm.addEventListener("click", () => actions.message(user));
        li.append(dm);
        return li;
      }),
    ...more,
  );
}
