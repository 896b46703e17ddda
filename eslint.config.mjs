// Lint is mechanical and runs in CI (npm test). Type-aware rules catch floating promises,
// which in a billing engine usually mean a money movement nobody awaited.
import tseslint from 'typescript-eslint';
import importX, { createNodeResolver } from 'eslint-plugin-import-x';
import prettier from 'eslint-config-prettier';

// The direction of the arrows between rooms, lowest first: a room may import only rooms below it.
//   billing (pure rules) <- db <- payments <- activities <- wiring <- api, worker <- dev (launchers)
//   workflows sit beside activities: they import billing and their own messages, and activities only as types.
// `test/`, `bench/` and `scripts/` are outside the building and may import anything.
const ROOMS = ['billing', 'db', 'payments', 'activities', 'workflows', 'wiring', 'api', 'worker', 'dev'];
const MAY_IMPORT = {
  billing: [],
  db: ['billing'],
  payments: ['billing', 'db'],
  activities: ['billing', 'db', 'payments'],
  workflows: ['billing', 'activities'], // activities narrowed to the type index below
  wiring: ['billing', 'db', 'payments'],
  api: ['billing', 'db', 'payments', 'workflows', 'wiring'],
  worker: ['billing', 'db', 'payments', 'activities', 'workflows', 'wiring'],
  dev: ROOMS,
};
const layerZones = ROOMS.flatMap((room) =>
  ROOMS.filter((other) => other !== room && !MAY_IMPORT[room].includes(other)).map((other) => ({
    target: `./${room}`,
    from: `./${other}`,
    message: `${room}/ may not import ${other}/ (see the room order in eslint.config.mjs)`,
  })),
);

export default tseslint.config(
  {
    ignores: [
      'node_modules/**',
      '.data/**',
      '.tools/**',
      'coverage/**',
      'eslint.config.mjs',
      'jest.config.js',
    ],
  },
  ...tseslint.configs.recommended,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    plugins: { 'import-x': importX },
    // Resolve `.ts` sources, or the import rules (no-cycle, no-restricted-paths) silently see nothing.
    settings: { 'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js', '.json'] })] },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': ['error', { checksVoidReturn: { arguments: false } }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'import-x/no-cycle': 'error',
      'import-x/no-restricted-paths': ['error', { zones: layerZones }],
      'no-restricted-syntax': [
        'error',
        { selector: "CallExpression[callee.name='parseFloat']", message: 'No floats near money.' },
      ],
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: it may see activities only as types (the index's
    // `Activities`), never their implementations, which reach the database and the network.
    files: ['workflows/**/*.ts'],
    rules: {
      'import-x/no-restricted-paths': [
        'error',
        {
          zones: [
            ...layerZones.filter((zone) => !(zone.target === './workflows' && zone.from === './activities')),
            {
              target: './workflows',
              from: './activities',
              except: ['./index.ts'],
              message: 'workflows see activities only through their index, as types',
            },
          ],
        },
      ],
    },
  },
  prettier,
);
