import { closeTestEnv } from "../support/TestEnv";

/**
 * Mocha root hooks (load with `--require dist/test/integration/hooks.js`):
 * stop and delete the shared Postgres/Redis after the whole run. Without it the
 * process 'exit' hooks in test/support still SIGKILL them and remove temp dirs.
 */
export const mochaHooks = {
  async afterAll(this: Mocha.Context): Promise<void> {
    this.timeout(60_000);
    await closeTestEnv();
  },
};
