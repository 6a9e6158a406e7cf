// Lint: typescript-eslint's recommended rules on hand-written code. Generated
// code (src/gen, clients/typescript/src/gen) and build output are excluded.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: [
      "dist/**",
      "node_modules/**",
      "src/gen/**",
      "clients/typescript/src/gen/**",
      "clients/typescript/dist/**",
      ".agentstate/**",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "no-constant-condition": ["error", { checkLoops: false }],
    },
  },
);
