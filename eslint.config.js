// Lint rules: typescript-eslint's recommended type-aware set, plus the project's
// determinism rule: clocks and randomness are read only through runtime/ ports.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const forbiddenClockReads = [
  { selector: "CallExpression[callee.object.name='Date'][callee.property.name='now']", message: 'Read time through the Clock port (runtime/clock.ts).' },
  { selector: "NewExpression[callee.name='Date']", message: 'Read time through the Clock port (runtime/clock.ts).' },
  { selector: "CallExpression[callee.object.name='Math'][callee.property.name='random']", message: 'Use the seeded PRNG (runtime/random.ts).' },
  { selector: "CallExpression[callee.object.name='performance'][callee.property.name='now']", message: 'Read time through the Clock port (runtime/clock.ts).' },
  { selector: "CallExpression[callee.name='setTimeout']", message: 'Schedule through the Clock port (runtime/clock.ts).' },
  { selector: "CallExpression[callee.name='setInterval']", message: 'Schedule through the Clock port (runtime/clock.ts).' },
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'data/**', '.ci/**', '.scratch/**', '.tools/**', '.kafka/**', 'test-artifacts/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true, allowBoolean: true }],
      '@typescript-eslint/no-floating-promises': 'error',
    },
  },
  {
    files: ['machines/**/*.ts', 'actors/**/*.ts', 'runtime/**/*.ts'],
    ignores: ['runtime/clock.ts', 'runtime/random.ts'],
    rules: { 'no-restricted-syntax': ['error', ...forbiddenClockReads] },
  },
  { files: ['eslint.config.js'], extends: [tseslint.configs.disableTypeChecked] },
  {
    // The inspector's page: browser modules served as they are (no build step), linted without type information.
    files: ['inspector/page/**/*.js'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries(
        ['window', 'document', 'location', 'history', 'sessionStorage', 'fetch', 'WebSocket', 'URL', 'URLSearchParams', 'Option', 'performance', 'requestAnimationFrame', 'setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'console'].map((name) => [name, 'readonly']),
      ),
    },
  },
  {
    // Plain Node scripts (no build step): linted without type information.
    files: ['scripts/**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: {
      globals: { process: 'readonly', console: 'readonly', performance: 'readonly', Buffer: 'readonly', URL: 'readonly', setTimeout: 'readonly', clearTimeout: 'readonly', setInterval: 'readonly', clearInterval: 'readonly' },
    },
  },
);
