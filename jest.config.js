/** @type {import('jest').Config} */
module.exports = {
    testEnvironment: 'node',
    roots: ['<rootDir>/test'],
    testMatch: ['**/*.test.ts'],
    transform: {
        '^.+\\.ts$': ['ts-jest', { tsconfig: 'tsconfig.json', diagnostics: false }],
    },
    globalSetup: '<rootDir>/test/harness/globalSetup.ts',
    testTimeout: 60000,
    maxWorkers: 2,
};
