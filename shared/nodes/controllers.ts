import type { TokenCredential } from '@azure/core-auth';
import { ComputeManagementClient, type ComputeManagementClientOptionalParams } from '@azure/arm-compute';
import type { DeploymentClient } from '../auth/deploymentClient';
import { Invalid, Unavailable, Upstream } from '../errors';
import type { NodeController, Transition, TransitionReporter, WatchedNode } from './watchdog';

/** The devhost: its console restarts the node's relay process (`POST /dev/nodes/{id}/restart`). */
export class DevhostNodeController implements NodeController {
    readonly kind = 'devhost';

    constructor(private readonly consoleUrl: string) {
        const u = new URL(consoleUrl);
        if (u.protocol !== 'http:' || !['localhost', '127.0.0.1', '[::1]'].includes(u.hostname)) throw new Error('The devhost console must be http on loopback');
    }

    async restart(node: WatchedNode): Promise<void> {
        let res: Response;
        try {
            res = await fetch(`${this.consoleUrl}/dev/nodes/${encodeURIComponent(node.id)}/restart`, { method: 'POST', signal: AbortSignal.timeout(30_000) });
        } catch (err) {
            throw new Unavailable('The devhost console is unreachable', { cause: err });
        }
        if (!res.ok) throw new Upstream(`The devhost could not restart ${node.id} (${res.status}): ${(await res.text()).slice(0, 300)}`);
    }
}

/**
 * Azure: the node is a VM scale set instance; a restart is `POST .../virtualMachines/{instanceId}/restart`
 * through `@azure/arm-compute`. The call returns once ARM accepted it (202): the watchdog sees the node
 * come back by its height, not by the operation's end.
 */
export class VmssNodeController implements NodeController {
    readonly kind = 'vmss';
    readonly #clients = new Map<string, ComputeManagementClient>();

    constructor(
        private readonly credential: TokenCredential,
        private readonly options: ComputeManagementClientOptionalParams = {},
    ) {}

    async restart(node: WatchedNode): Promise<void> {
        const at = node.vmss;
        if (!at) throw new Invalid(`The node ${node.id} has no scale set instance in its configuration`);
        let client = this.#clients.get(at.subscriptionId);
        if (!client) {
            client = new ComputeManagementClient(this.credential, at.subscriptionId, this.options);
            this.#clients.set(at.subscriptionId, client);
        }
        try {
            await client.virtualMachineScaleSetVMs.restart(at.resourceGroup, at.scaleSet, at.instanceId).submitted();
        } catch (err) {
            throw new Upstream(`ARM refused the restart of ${at.scaleSet}/${at.instanceId}: ${(err as Error).message}`, { cause: err });
        }
    }
}

/** No controller configured: a stalled node is reported, and restarting it is somebody else's job. */
export class NoNodeController implements NodeController {
    readonly kind = 'none';
    async restart(node: WatchedNode): Promise<void> {
        throw new Unavailable(`No node controller is configured to restart ${node.id}`);
    }
}

/** A member reports its nodes' transitions to the core (`POST /api/chain/nodes/{id}/transitions`), which publishes them. */
export class CoreTransitionReporter implements TransitionReporter {
    constructor(private readonly core: DeploymentClient) {}

    async report(node: WatchedNode, t: Transition): Promise<void> {
        const { reported: _r, ...transition } = t;
        const res = await this.core.request('POST', `chain/nodes/${encodeURIComponent(node.id)}/transitions`, { ...transition, height: node.height, restarts: node.restarts });
        if (res.status !== 200 && res.status !== 201) throw new Upstream(`The core refused the node report (${res.status}): ${(res.body as { detail?: string } | undefined)?.detail ?? ''}`);
    }

    /** Registers a node with the core's registry (idempotent: the same node again answers 200). */
    async register(node: WatchedNode): Promise<void> {
        const res = await this.core.request('POST', 'chain/nodes', { nodeId: node.id, enode: node.enode, rpcUrl: node.rpcUrl });
        if (res.status !== 200 && res.status !== 201) throw new Upstream(`The core refused the node ${node.id} (${res.status}): ${(res.body as { detail?: string } | undefined)?.detail ?? ''}`);
    }
}
