/** @type {import('jest').Config} */
module.exports = {
    testEnvironment: 'node',
    roots: ['<rootDir>/test'],
    testMatch: ['**/*.test.ts'],
    // The browser suite has a script of its own (npm run test:browser): it needs Debian's Chromium.
    testPathIgnorePatterns: ['/node_modules/', '<rootDir>/test/browser/'],
    transform: {
        '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json', diagnostics: false }],
    },
    globalSetup: '<rootDir>/test/harness/globalSetup.ts',
    testTimeout: 60000,
    maxWorkers: 2,
};
