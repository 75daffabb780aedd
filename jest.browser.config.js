/** The browser suite (npm run test:browser): Debian's Chromium through playwright-core. */
const base = require('./jest.config');
module.exports = { ...base, roots: ['<rootDir>/test/browser'], testPathIgnorePatterns: [] };
