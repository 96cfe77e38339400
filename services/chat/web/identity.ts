// Display names prove nothing: a user's id is shown beside a name that two members share, or
// that looks the same as another (issue 24 #13).
import type { User } from "@chat/client";

/**
 * Cyrillic and Greek letters drawn like Latin ones: "Аlice" with a Cyrillic А looks like "Alice".
 * Not all of Unicode's confusables, the ones a name is most easily forged with.
 */
const LOOKALIKES = new Map(
  (
    "\u0430a \u0410A \u0412B \u0435e \u0415E \u041AK \u043Ak \u041CM \u041DH \u043Eo \u041EO \u0440p \u0420P \u0441c " +
    "\u0421C \u0422T \u0443y \u0423Y \u0445x \u0425X \u0456i \u0406I \u0458j \u0408J \u0455s \u0405S \u0501d \u051Bq " +
    "\u051Dw \u0391A \u0392B \u0395E \u0396Z \u0397H \u0399I \u039AK \u039CM \u039DN \u039FO \u03A1P \u03A4T \u03A5Y " +
    "\u03A7X \u03BFo \u03BDv \u03C1p \u03B9i \u03BAk"
  )
    .split(" ")
    .map((pair) => [pair[0]!, pair[1]!] as const),
);

/** What a name looks like: compatibility forms folded, look-alike letters mapped to Latin, any case. */
function looks(name: string): string {
  return [...name.normalize("NFKC")]
    .map((c) => LOOKALIKES.get(c) ?? c)
    .join("")
    .toLowerCase();
}

/** Ids seen under each look of a display name (members and authors of every room). */
const idsByName = new Map<string, Set<string>>();

export function seen(user: User): void {
  const key = looks(user.name);
  const ids = idsByName.get(key) ?? new Set<string>();
  ids.add(user.id);
  idsByName.set(key, ids);
}

/**
 * A user's name, and beside it their stable id when someone else goes by the same name, or one
 * that looks the same: the id (the token's `sub`) is who it is.
 */
export function nameOf<T extends HTMLElement>(element: T, user: User): T {
  element.textContent = user.name;
  if ((idsByName.get(looks(user.name))?.size ?? 0) > 1) {
    element.append(Object.assign(document.createElement("span"), { className: "uid", textContent: ` (${user.id})` }));
  }
  return element;
}
