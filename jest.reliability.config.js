/**
 * The reliability suite (npm run test:reliability): crashes, outages, fuzzing, abusive clients.
 * Heavier than the unit, integration and e2e tests; one devhost per file, as there.
 * @type {import('jest').Config}
 */
module.exports = {
    ...require('./jest.config.js'),
    testPathIgnorePatterns: ['/node_modules/'],
    roots: ['<rootDir>/test/reliability'],
    testTimeout: 180000,
    maxWorkers: 2,
};
