import { closeTestEnv } from "../support/TestEnv";

/**
 * Mocha root hooks (load with `--require dist/test/integration/hooks.js`):
 * stop and delete the shared Postgres/Redis after the whole run. Without it the
 * process 'exit' hooks in test/support still SIGKILL them and remove temp dirs.
 */
export const mochaHooks = {
  async afterAll(this: Mocha.Context): Promise<void> {
    this.timeout(120_000); // Postgres gets 30 s to stop before SIGKILL, then its dir is removed: slow on a loaded machine
    await closeTestEnv();
  },
};
