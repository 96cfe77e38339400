import calculateSlot from "cluster-key-slot";
import type { Cluster } from "ioredis";

/** The master that serves `key`'s slot as `cluster` last heard, or undefined before it knows the slots. */
export const masterOfKey = (cluster: Cluster, key: string): string | undefined => cluster.slots[calculateSlot(key)]?.[0];

let tagsBySlot: string[] | undefined;

/**
 * The shortest decimal tag of each slot: `{tag}` puts a key in that slot. Built once, on first use,
 * from about 10^5 CRC16s (a few milliseconds).
 */
function tagForSlot(slot: number): string {
  if (!tagsBySlot) {
    const tags: string[] = new Array<string>(16384);
    let filled = 0;
    for (let n = 0; filled < 16384; n++) {
      const s = calculateSlot(String(n));
      if (tags[s] === undefined) {
        tags[s] = String(n);
        filled++;
      }
    }
    tagsBySlot = tags;
  }
  return tagsBySlot[slot]!;
}

/**
 * A hash tag for keys that must share a slot with `name` (a key, or a sharded channel, which Redis
 * Cluster hashes like a key): a script may touch only keys of one slot, and SPUBLISH only on a
 * channel of that slot. `prefix:{tag}:rest` then lands where `name` does. The tag is `name`'s own
 * (its `{…}` part, or all of it) when that can be written between braces, so keys stay readable;
 * otherwise (an empty name, or a `}` that is not a tag's end) a short decimal tag of the same slot.
 */
export function sameSlotTag(name: string): string {
  const open = name.indexOf("{");
  const close = open < 0 ? -1 : name.indexOf("}", open + 1);
  if (close > open + 1) return name.slice(open + 1, close);
  if (name !== "" && !name.includes("}")) return name;
  return tagForSlot(calculateSlot(name));
}
