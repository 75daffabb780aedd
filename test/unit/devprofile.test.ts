import { readFileSync } from 'node:fs';
import path from 'node:path';
import { stableId } from '../../devhost/services/identity';
import { CORE_TASK_HUB, memberResourceNames } from '../../shared/deployment/resourceNames';
import { profile } from '../../devprofile';
import { appObjectId, userObjectId } from '../../shared/directory/objectIds';

/** Flexchange's devhost profile, and the one rule the devhost and the app must share without importing each other. */
describe('the devhost profile', () => {
    it('keys users and apps the way the local issuer names them, so dev tokens and directory entries agree', () => {
        expect(userObjectId('Tess@Example.com')).toBe(stableId('user:tess@example.com'));
        expect(appObjectId('flexchange-core')).toBe(stableId('app:flexchange-core'));
    });

    it("gives a member its own task hub, points it at its own node first and the shared chain after it, and leaves the chain settings alone without a node", () => {
        const node = { nodeId: 'org-1-node-0', rpcUrl: 'http://127.0.0.1:40001', enode: 'enode://ab@127.0.0.1:40001' };
        const taskHub = memberResourceNames('org-1').taskHub;
        expect(taskHub).not.toBe(CORE_TASK_HUB);
        expect(profile.memberSettings!({ name: 'member-org-1', orgId: 'org-1', node, ledgerUrl: 'http://127.0.0.1:8545' })).toEqual({
            FLEXCHANGE_TASK_HUB: taskHub,
            FLEXCHANGE_NODES: JSON.stringify([node]),
            FLEXCHANGE_LEDGER_RPC_URLS: 'http://127.0.0.1:40001,http://127.0.0.1:8545',
        });
        expect(profile.memberSettings!({ name: 'member-org-1', orgId: 'org-1' })).toEqual({ FLEXCHANGE_TASK_HUB: taskHub });
    });

    it("names the core's task hub in the sample settings the devhost starts it with", () => {
        const sample = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'local.settings.sample.json'), 'utf8')) as { Values: Record<string, string> };
        expect(sample.Values.FLEXCHANGE_TASK_HUB).toBe(CORE_TASK_HUB);
    });
});
