import { z } from 'zod';
import { ethAddress } from '../shared/validation';
import { getServices } from '../shared/composition';
import { versionView } from '../shared/chain/versions';
import { ARTIFACT_NAMES } from '../shared/chain/artifact';
import { Invalid } from '../shared/errors';
import { actorOf, httpRoute, OPERATOR_ROLE } from './http/route';

/** Every signed-in role reads the contract versions (members need the address and ABI to verify on-chain). */
const READERS = [OPERATOR_ROLE, 'Flexchange.Approver', 'Org.Admin', 'Org.Trader', 'Deployment.Member', 'Deployment.Core'];

const address = ethAddress;
const newVersion = z
    .object({
        artifact: z.enum(ARTIFACT_NAMES).optional(),
        address: address.optional(),
        abi: z.array(z.record(z.string(), z.unknown())).min(1).max(500).optional(),
    })
    .strict()
    .refine((b) => (b.artifact !== undefined && b.address === undefined && b.abi === undefined) || (b.artifact === undefined && b.address !== undefined && b.abi !== undefined), {
        message: 'Give either { "artifact": "EnergyExchange" } (or "EnergyExchangeV2") to deploy a compiled contract, or { "address", "abi" } to register one deployed elsewhere',
    });

/** GET /api/contracts: every recorded version, oldest first. */
httpRoute('contractsList', {
    route: 'contracts',
    methods: ['GET'],
    access: { roles: READERS },
    summary: 'List the contract versions',
    handler: async () => {
        const versions = await getServices().contracts().versions.list();
        return { jsonBody: { items: versions.map(versionView) } };
    },
});

/** GET /api/contracts/{version}: one version with its ABI. */
httpRoute('contractsGet', {
    route: 'contracts/{version}',
    methods: ['GET'],
    access: { roles: READERS },
    summary: 'One contract version, with its ABI',
    handler: async ({ params }) => {
        const n = Number(params.version);
        if (!Number.isInteger(n) || n < 1) throw new Invalid('The version must be a positive integer', [{ path: 'params.version', message: 'positive integer' }]);
        const v = await getServices().contracts().versions.byVersion(n);
        return { jsonBody: { ...versionView(v), abi: v.abi } };
    },
});

/**
 * POST /api/contracts (operator): `{ "artifact": "EnergyExchange" }` deploys the compiled
 * artifact from the operator account; `{ address, abi }` registers a contract deployed
 * elsewhere after checking its code. Either way it becomes the latest version.
 */
httpRoute('contractsCreate', {
    route: 'contracts',
    methods: ['POST'],
    access: { roles: [OPERATOR_ROLE] },
    body: newVersion,
    summary: 'Deploy or register a contract version',
    handler: async ({ body, caller }) => {
        const services = getServices();
        const contracts = services.contracts();
        const audit = services.audit;
        const by = caller!.principal.oid;
        const { version, created } = body.artifact ? await contracts.deploy(body.artifact, by) : await contracts.register({ address: body.address!, abi: body.abi as never }, by);
        if (!created) return { jsonBody: versionView(version) };
        await audit.record({
            orgId: caller!.orgId ?? 'operator',
            actor: { oid: by, orgId: caller!.orgId, appOnly: caller!.principal.appOnly },
            action: body.artifact ? 'contract.deployed' : 'contract.registered',
            target: `v${version.version}`,
            details: { address: version.address, txHash: version.txHash },
        });
        return { status: 201, headers: { location: `/api/contracts/${version.version}` }, jsonBody: versionView(version) };
    },
});

/** PATCH /api/contracts/{version} (operator): `{ "active": false }` takes a version out of new work; work on it carries on. */
httpRoute('contractsUpdate', {
    route: 'contracts/{version}',
    methods: ['PATCH'],
    access: { roles: [OPERATOR_ROLE] },
    body: z.object({ active: z.boolean() }).strict(),
    summary: 'Take a contract version out of new work, or back in',
    handler: async ({ params, body, caller }) => {
        const n = Number(params.version);
        if (!Number.isInteger(n) || n < 1) throw new Invalid('The version must be a positive integer', [{ path: 'params.version', message: 'positive integer' }]);
        const services = getServices();
        const version = await services.contracts().versions.setActive(n, body.active);
        await services.audit.record({
            orgId: caller!.orgId ?? 'operator',
            actor: actorOf(caller!),
            action: body.active ? 'contract.activated' : 'contract.deactivated',
            target: `v${n}`,
            details: {},
        });
        return { jsonBody: versionView(version) };
    },
});
