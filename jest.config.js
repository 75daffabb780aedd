/** @type {import('jest').Config} */
module.exports = {
    testEnvironment: 'node',
    roots: ['<rootDir>/test'],
    testMatch: ['**/*.test.ts'],
    // The browser suite has a script of its own (npm run test:browser): it needs Debian's Chromium.
    // The reliability suite has a config of its own (npm run test:reliability).
    testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/browser/', '<rootDir>/test/reliability/'],
    transform: {
        '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json', diagnostics: false }],
    },
    globalSetup: '<rootDir>/test/harness/globalSetup.ts',
    testTimeout: 60000,
    maxWorkers: 2,
};
