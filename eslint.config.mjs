// ESLint (flat config): the hand-written JavaScript. Formatting is Prettier's
// (.prettierrc.json); generated files (binding.cjs) and the framework apps (their own
// tooling) are left out.
import js from "@eslint/js";
import globals from "globals";

export default [
  {
    ignores: [
      "node_modules/**",
      "**/node_modules/**",
      "binding.cjs",
      "target/**",
      "npm/**",
      "frameworks/*/**",
      "__test__/**",
      "docs/**",
    ],
  },
  js.configs.recommended,
  {
    files: ["**/*.cjs"],
    languageOptions: { sourceType: "commonjs", ecmaVersion: 2024, globals: { ...globals.node } },
  },
  {
    files: ["**/*.mjs", "**/*.js"],
    languageOptions: { sourceType: "module", ecmaVersion: 2024, globals: { ...globals.node } },
  },
  {
    // Functions it hands the browser (page.waitForFunction) use the page's globals.
    files: ["demo/web/e2e.mjs"],
    languageOptions: { globals: { ...globals.browser } },
  },
  {
    rules: {
      // `catch (err)` names what it ignores; `_`-prefixed names are placeholders; `{ a, ...rest }`
      // leaves `a` out of `rest`.
      "no-unused-vars": [
        "error",
        { caughtErrors: "none", argsIgnorePattern: "^_", varsIgnorePattern: "^_", ignoreRestSiblings: true },
      ],
      "no-empty": ["error", { allowEmptyCatch: true }],
    },
  },
];
