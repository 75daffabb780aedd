import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { removeDir, repoRoot, tempDir } from '../harness/devhost';

const MEMBER_SUB = '0b5e0e4c-1111-4222-8333-444455556666';
const PRINCIPAL = '7d3f1c2b-1111-4222-8333-444455556666';

/**
 * scripts/azure/deploy.sh with the Azure CLI played by a local fake (the one part that cannot run here): it records
 * every `az` call and answers `account show` and the deployment's outputs as the CLI does. `npm run ledger:genesis`
 * runs for real; the app registration (Microsoft Graph, tested on its own) and the package build are stood in for
 * by a fake `npm` that records them and writes what they write.
 */
describe('scripts/azure/deploy.sh (Azure CLI fake)', () => {
    const dir = tempDir('flexchange-deploy-');
    const bin = path.join(dir, 'bin');
    const log = path.join(dir, 'calls.log');
    const state = path.join(dir, 'state');
    const parameters = path.join(dir, 'core.parameters.json');
    const realNpm = execFileSync('bash', ['-c', 'command -v npm'], { encoding: 'utf8' }).trim();

    beforeAll(() => {
        mkdirSync(bin);
        writeFileSync(parameters, JSON.stringify({ $schema: 'https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#', contentVersion: '1.0.0.0', parameters: { namePrefix: { value: 'fxcore' } } }));
        writeFileSync(
            path.join(bin, 'az'),
            `#!/usr/bin/env bash
printf 'az %s\\n' "$*" >> "${log}"
case "$*" in
  "account show --query id -o tsv") [ -n "$AZ_SIGNED_OUT" ] && { echo 'Please run az login' >&2; exit 1; }; echo 99999999-1111-2222-3333-444444444444 ;;
  *"properties.outputs.principalId.value"*) echo ${PRINCIPAL} ;;
  *"properties.outputs.functionAppName.value"*) echo fxcore-func-abc123 ;;
  *"properties.outputs.functionAppHostName.value"*) echo fxcore-func-abc123.azurewebsites.net ;;
esac
`,
        );
        writeFileSync(
            path.join(bin, 'npm'),
            `#!/usr/bin/env bash
printf 'npm %s\\n' "$*" >> "${log}"
case "$3" in
  ledger:genesis) exec "${realNpm}" "$@" ;;
  azure:app-registration) while [ $# -gt 0 ]; do [ "$1" = --parameters-out ] && echo '{"parameters":{"graphServicePrincipalId":{"value":"sp"}}}' > "$2"; shift; done ;;
  package) ;;
  *) echo "fake npm: $*" >&2; exit 1 ;;
esac
`,
        );
        chmodSync(path.join(bin, 'az'), 0o755);
        chmodSync(path.join(bin, 'npm'), 0o755);
    });
    afterAll(() => removeDir(dir));

    const run = (env: Record<string, string> = {}) => {
        writeFileSync(log, '');
        const res = spawnSync('bash', [path.join(repoRoot, 'scripts', 'azure', 'deploy.sh'), '--resource-group', 'rg-fx', '--location', 'westeurope', '--parameters', parameters, '--chain-id', '4242', '--member-subscription', MEMBER_SUB, '--state-dir', state, '--treasury', `0x${'11'.repeat(20)}=1000`], {
            cwd: dir,
            encoding: 'utf8',
            env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, ...env },
        });
        return { ...res, calls: readFileSync(log, 'utf8').split('\n').filter(Boolean) };
    };

    it('deploys the core, grants it the member subscription, registers the API, redeploys with it and publishes the package', () => {
        const { status, stderr, calls } = run();
        expect([status, stderr.slice(-400)]).toEqual([0, expect.stringContaining('The core runs at https://fxcore-func-abc123.azurewebsites.net/api')]);
        const ledger = path.join(state, 'core.ledger.parameters.json');
        const deploy = `az deployment group create -g rg-fx -n flexchange-core -f infra/core.json -p @${parameters} -p @${ledger} -p chainId=4242 -p memberSubscriptionId=${MEMBER_SUB}`;
        expect(calls).toEqual([
            'az account show --query id -o tsv',
            expect.stringMatching(/^npm run -s ledger:genesis -- --chain-id 4242 --new-validators 4 --alloc 0x1{40}=1000 --out .*\/state\/genesis\.json --parameters-out .*\/state\/core\.ledger\.parameters\.json$/),
            'az group create -n rg-fx -l westeurope -o none',
            `${deploy} -o none`,
            'az deployment group show -g rg-fx -n flexchange-core --query properties.outputs.principalId.value -o tsv',
            'az deployment group show -g rg-fx -n flexchange-core --query properties.outputs.functionAppName.value -o tsv',
            'az deployment group show -g rg-fx -n flexchange-core --query properties.outputs.functionAppHostName.value -o tsv',
            `az role assignment create --assignee-object-id ${PRINCIPAL} --assignee-principal-type ServicePrincipal --role Contributor --scope /subscriptions/${MEMBER_SUB} -o none`,
            `az role assignment create --assignee-object-id ${PRINCIPAL} --assignee-principal-type ServicePrincipal --role Role Based Access Control Administrator --scope /subscriptions/${MEMBER_SUB} -o none`,
            `npm run -s azure:app-registration -- --core-principal-id ${PRINCIPAL} --parameters-out ${state}/core.registration.parameters.json.tmp`,
            `${deploy} -p @${state}/core.registration.parameters.json -o none`,
            'npm run -s package',
            'az functionapp deployment source config-zip -g rg-fx -n fxcore-func-abc123 --src build/flexchange.zip -o none',
        ]);
        // The validators' keys, made by the real ledger:genesis, readable by the operator alone.
        const file = JSON.parse(readFileSync(ledger, 'utf8')) as { parameters: Record<string, { value: unknown }> };
        expect(file.parameters.validatorCount!.value).toBe(4);
        expect((file.parameters.validatorKeys!.value as { keys: string[] }).keys).toHaveLength(4);
        expect(statSync(ledger).mode & 0o777).toBe(0o600);
        // Nothing secret on the terminal.
        for (const key of (file.parameters.validatorKeys!.value as { keys: string[] }).keys) expect(stderr).not.toContain(key.slice(2));
    }, 60_000);

    it('keeps the genesis and validator keys on a second run, and deploys with the registration it made', () => {
        const ledger = path.join(state, 'core.ledger.parameters.json');
        const before = readFileSync(ledger, 'utf8');
        const { status, calls } = run();
        expect(status).toBe(0);
        expect(calls.some((c) => c.includes('ledger:genesis'))).toBe(false);
        expect(readFileSync(ledger, 'utf8')).toBe(before);
        expect(calls.filter((c) => c.startsWith('az deployment group create')).every((c) => c.includes(`-p @${state}/core.registration.parameters.json`))).toBe(true);
        expect(existsSync(`${state}/core.registration.parameters.json.tmp`)).toBe(false);
    }, 60_000);

    it('stops before touching anything when the Azure CLI is signed out, or an option is missing', () => {
        const signedOut = run({ AZ_SIGNED_OUT: '1' });
        expect(signedOut.status).toBe(2);
        expect(signedOut.stderr).toContain('sign in first (az login)');
        expect(signedOut.calls).toEqual(['az account show --query id -o tsv']);
        const missing = spawnSync('bash', [path.join(repoRoot, 'scripts', 'azure', 'deploy.sh'), '--resource-group', 'rg-fx'], { encoding: 'utf8', env: { ...process.env, PATH: `${bin}:${process.env.PATH}` } });
        expect(missing.status).toBe(2);
        expect(missing.stderr).toContain('npm run azure:deploy -- --resource-group');
    });
});
