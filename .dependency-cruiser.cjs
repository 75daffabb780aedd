/**
 * The project's import rules, checked by test/unit/architecture.test.ts. To see them:
 *   npx depcruise --config .dependency-cruiser.cjs devhost devprofile shared functions orchestrations scripts bench contracts
 */
module.exports = {
    forbidden: [
        {
            name: 'no-circular',
            comment: 'An import circle: move the piece both sides need to where it belongs.',
            severity: 'error',
            from: {},
            to: { circular: true },
        },
        {
            name: 'devhost-imports-no-app',
            comment: 'The devhost is a reusable local host: it sees an app only through the profile module it loads by path (devhost/profile.ts).',
            severity: 'error',
            from: { path: '^devhost/' },
            to: { path: '^(shared|functions|orchestrations|devprofile|contracts|scripts|bench)/' },
        },
        {
            name: 'app-imports-no-devhost',
            comment: "The app talks to the devhost over its console's HTTP API only.",
            severity: 'error',
            from: { path: '^(shared|functions|orchestrations|contracts)/' },
            to: { path: '^devhost/' },
        },
        {
            name: 'profile-sees-the-profile-interface-only',
            comment: "The app's devhost profile knows the devhost by the interface it implements.",
            severity: 'error',
            from: { path: '^devprofile/' },
            to: { path: '^devhost/', pathNot: '^devhost/profile\\.ts$' },
        },
    ],
    options: {
        doNotFollow: { path: 'node_modules' },
        exclude: { path: '(^|/)(node_modules|dist)/' },
        // Type-only imports count: a circle of types is still a circle to read.
        tsPreCompilationDeps: true,
        tsConfig: { fileName: 'tsconfig.json' },
    },
};
