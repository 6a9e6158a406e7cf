// Lint: typescript-eslint's recommended rules on hand-written code. Generated
// code (src/gen, clients/typescript/src/gen) and build output are excluded.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

// The layering of src/ (see the header of src/domain/ports.ts): the domain
// and the errors import no adapter, driver or transport; an adapter never
// imports another adapter (they meet through the ports in src/domain, wired in
// src/compose); the gRPC edge reaches the stores only through the domain.
const DRIVERS = "^(pg|ioredis|redlock)$";
const folder = (...names) => `(^|/)(${names.join("|")})(/|$)`;
const restrict = (...patterns) => ({
  "no-restricted-imports": ["error", { patterns: patterns.map(([regex, message]) => ({ regex, message })) }],
});
/** An adapter (src/store/<own>) never imports the other adapter or its drivers, nor the edge, metrics or composition. */
const adapter = (own, other, otherDrivers) => ({
  files: [`src/store/${own}/**/*.ts`],
  rules: restrict(
    [otherDrivers, `store/${own} does not use ${other}: adapters meet only through ports in src/domain.`],
    [folder(other), "Adapters meet only through ports in src/domain, wired in src/compose."],
    [
      folder("grpc", "metrics", "compose"),
      "An adapter imports only the domain, errors, log, config and its own helpers.",
    ],
  ),
});
const layering = [
  {
    files: ["src/domain/**/*.ts", "src/errors/**/*.ts"],
    rules: restrict(
      [`${DRIVERS}|^@grpc/|^prom-client$`, "The domain imports no driver or transport: declare a port in src/domain."],
      [folder("store", "grpc", "metrics", "compose"), "The domain imports no adapter: declare a port in src/domain."],
    ),
  },
  adapter("postgres", "redis", "^(ioredis|redlock)$"),
  adapter("redis", "postgres", "^pg$"),
  {
    files: ["src/grpc/**/*.ts"],
    rules: restrict(
      [DRIVERS, "The gRPC edge reaches the stores only through the domain."],
      // Not the edge's own StoreService folder (./store from src/grpc) nor its generated code (gen/.../store).
      [
        "(^|/)(?<!^\\./|gen/agentstate/v1/)(store|compose)(/|$)",
        "The gRPC edge reaches the stores only through the domain.",
      ],
    ),
  },
  {
    files: ["src/metrics/**/*.ts"],
    rules: restrict(
      [DRIVERS, "Metrics take small interfaces (see Metrics.ts), not driver types."],
      [folder("store", "compose"), "Metrics take small interfaces (see Metrics.ts), not adapter classes."],
    ),
  },
];

export default tseslint.config(
  {
    ignores: [
      "dist/**",
      "node_modules/**",
      "src/gen/**",
      "clients/typescript/src/gen/**",
      "clients/typescript/dist/**",
      "clients/typescript-langgraph/dist/**",
      "examples/*/*/dist/**",
      "**/.venv/**",
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
  ...layering,
);
