import { afterAll } from "vitest";
// The built file, as the tests load it through @chat/testkit: one module, one set of processes.
import { killAllChildren } from "./services/testkit/dist/children.js";

// Registered before the file's own hooks, so it runs after them (vitest runs `afterAll` hooks in
// reverse order): whatever a failed or timed-out file left running goes with it (testkit children.ts).
afterAll(() => {
  const killed = killAllChildren();
  if (killed > 0) console.warn(`killed ${killed} process(es) this test file left running`);
});
