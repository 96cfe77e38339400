// What the page tells the user outside the message list: toasts for failed actions, the
// reconnect banner and the connection error line.
import { ChatError } from "@chat/client";

const toasts = document.getElementById("toasts")!;
const banner = document.getElementById("banner")!;
const errorLine = document.getElementById("error")!;

/** Shows a message for a few seconds (longer ones stay until dismissed by a click or Escape). */
export function toast(text: string, kind: string): void {
  const box = Object.assign(document.createElement("div"), { className: "toast" });
  box.dataset.kind = kind;
  box.setAttribute("role", "alert");
  const close = Object.assign(document.createElement("button"), { type: "button", textContent: "Dismiss" });
  close.addEventListener("click", () => box.remove());
  box.append(Object.assign(document.createElement("span"), { textContent: text }), close);
  toasts.append(box);
  setTimeout(() => box.remove(), 8000);
}

/** A failed action as a person reads it: what happened and what to do. */
export function explain(what: string, err: unknown): string {
  if (err instanceof ChatError) {
    if (err.code === "rate_limited") {
      const reason = err.message.replace(/; retry in \d+ ms$/, "");
      return `${what}: ${reason}. Try again in ${Math.max(1, Math.ceil((err.retryAfterMs ?? 1000) / 1000))} s.`;
    }
    if (err.code === "forbidden") return `${what}: not allowed. ${err.message}`;
    if (err.code === "not_found") return `${what}: that message is gone.`;
    return `${what}: ${err.message}`;
  }
  return `${what}: ${err instanceof Error ? err.message : String(err)}`;
}

export function showToastFor(what: string, err: unknown): void {
  toast(explain(what, err), err instanceof ChatError ? err.code : "error");
}

let hideBanner: ReturnType<typeof setTimeout> | undefined;

export function showBanner(text: string | undefined, hideAfterMs?: number): void {
  clearTimeout(hideBanner);
  banner.hidden = !text;
  banner.textContent = text ?? "";
  if (text && hideAfterMs) hideBanner = setTimeout(() => showBanner(undefined), hideAfterMs);
}

export function showError(message: string | undefined): void {
  errorLine.hidden = !message;
  errorLine.textContent = message ?? "";
}

document.addEventListener("keydown", (event) => {
  if (event.key === "Escape") toasts.lastElementChild?.remove();
});
