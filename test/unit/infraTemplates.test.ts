import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { loadSettings } from '../../shared/config';
import { CONTAINERS } from '../../shared/documents/containers';
import { CORE_TASK_HUB } from '../../shared/deployment/resourceNames';
import { DATA_ROLE_IDS, dataGrants, type DataGrant } from '../../shared/deployment/dataRoles';
import { armDeploymentController } from '../../shared/deployment/armMember';
import type { NetworkClaim } from '../../shared/deployment/memberNetworks';
import { MemoryRepository } from './fakes/memoryStores';
import type { BlobStore } from '../../shared/blobs/blobStore';

/**
 * Static checks of the ARM templates in infra/ (no Azure, no network): structure,
 * references, API versions, secrets, network exposure of the ledger RPC port, and that
 * the templates give the app the settings, identities and data stores it needs.
 */

// The templates are plain JSON walked generically; `any` keeps the navigation readable.
type Obj = Record<string, any>;

const INFRA = path.join(__dirname, '..', '..', 'infra');
/** JSON in infra/ that is neither a template nor a parameter file: the devhost broker's entities. */
const NOT_TEMPLATES = new Set(['servicebus.entities.json']);
const TEMPLATE_SCHEMA = 'https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#';
const PARAMETERS_SCHEMA = 'https://schema.management.azure.com/schemas/2019-04-01/deploymentParameters.json#';
const API_VERSION = /^\d{4}-\d{2}-\d{2}(-preview)?$/;
const SECRET_NAME = /(password|secret|key|token|connectionstring)/i;
// Public keys: public by definition (the nodes' SSH admin login, password login off; the validators' node keys' public halves).
const NOT_SECRET = new Set(['adminPublicKey', 'memberNodeSshPublicKey', 'validatorPublicKeys']);
/** Key material in a literal: a template or parameter file must never carry one. */
const SECRET_VALUE = /(AccountKey=|SharedAccessKey=|accesskey=|-----BEGIN [A-Z ]*PRIVATE KEY|"password"\s*:)/i;
const OPEN_SOURCES = new Set(['*', 'internet', '0.0.0.0/0', 'any']);
const RPC_PORT = 8545;
const P2P_PORT = 30303;

const PARAM_REF = /parameters\('([^']+)'\)/g;
const VAR_REF = /variables\('([^']+)'\)/g;

const jsonFiles = readdirSync(INFRA).filter((f) => f.endsWith('.json')).sort();
const templateFiles = jsonFiles.filter((f) => !f.endsWith('.parameters.json') && !NOT_TEMPLATES.has(f));
const parameterFiles = jsonFiles.filter((f) => f.endsWith('.parameters.json'));
const load = (file: string): Obj => JSON.parse(readFileSync(path.join(INFRA, file), 'utf8')) as Obj;

// ------------------------------------------------------------------ checker functions

const isExpression = (s: string) => s.startsWith('[') && !s.startsWith('[[');
const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Every string value in a JSON tree, with where it is. */
function strings(value: unknown, at = '$'): Array<[string, string]> {
    if (typeof value === 'string') return [[at, value]];
    if (Array.isArray(value)) return value.flatMap((v, i) => strings(v, `${at}[${i}]`));
    if (isObj(value)) return Object.entries(value).flatMap(([k, v]) => strings(v, `${at}.${k}`));
    return [];
}

/** Every `parameters('x')` / `variables('x')` in an expression names a declared one. */
function undeclaredReferences(t: Obj): string[] {
    const problems: string[] = [];
    for (const [at, s] of strings(t)) {
        if (!isExpression(s)) continue;
        for (const m of s.matchAll(PARAM_REF)) if (!(m[1] in (t.parameters ?? {}))) problems.push(`${at}: parameters('${m[1]}') is not declared`);
        for (const m of s.matchAll(VAR_REF)) if (!(m[1] in (t.variables ?? {})) && !copiedVariables(t).has(m[1])) problems.push(`${at}: variables('${m[1]}') is not declared`);
    }
    return problems;
}

/** Variables a `copy` loop in `variables` declares. */
function copiedVariables(t: Obj): Set<string> {
    return new Set(((t.variables?.copy ?? []) as Obj[]).map((c) => String(c.name)));
}

/** Expressions end with `]`, and their parentheses and brackets balance outside string literals. */
function expressionSyntax(t: Obj): string[] {
    const problems: string[] = [];
    for (const [at, s] of strings(t)) {
        if (!isExpression(s)) continue;
        if (!s.endsWith(']')) {
            problems.push(`${at}: expression does not end with ]`);
            continue;
        }
        const body = s.slice(1, -1).replace(/'(?:[^']|'')*'/g, 'S');
        if (body.includes("'")) {
            problems.push(`${at}: unterminated string literal`);
            continue;
        }
        const stack: string[] = [];
        for (const ch of body) {
            if (ch === '(' || ch === '[') stack.push(ch === '(' ? ')' : ']');
            else if (ch === ')' || ch === ']') {
                if (stack.pop() !== ch) {
                    problems.push(`${at}: unbalanced ${ch}`);
                    break;
                }
            }
        }
        if (stack.length) problems.push(`${at}: ${stack.length} unclosed bracket(s)`);
    }
    return problems;
}

/** Every resource, nested ones included, with its full type. */
function allResources(resources: unknown, parentType = ''): Array<{ fullType: string; resource: Obj }> {
    if (!Array.isArray(resources)) return [];
    return resources.filter(isObj).flatMap((r) => {
        const type = typeof r.type === 'string' ? r.type : '';
        const fullType = parentType && !type.includes('/') ? `${parentType}/${type}` : type;
        return [{ fullType, resource: r }, ...allResources(r.resources, fullType)];
    });
}

function resourceProblems(t: Obj): string[] {
    const problems: string[] = [];
    allResources(t.resources).forEach(({ fullType, resource }, i) => {
        const where = `resource #${i} (${fullType || 'no type'})`;
        if (typeof resource.type !== 'string' || !resource.type) problems.push(`${where}: no type`);
        if (typeof resource.name !== 'string' || !resource.name) problems.push(`${where}: no name`);
        if (typeof resource.apiVersion !== 'string' || !API_VERSION.test(resource.apiVersion)) problems.push(`${where}: apiVersion ${JSON.stringify(resource.apiVersion)} is not a date version`);
    });
    return problems;
}

/** A `dependsOn` on `resourceId('T', ...)` names a type this template deploys. */
function dependsOnProblems(t: Obj): string[] {
    const declared = new Set(allResources(t.resources).map((r) => r.fullType.toLowerCase()));
    const problems: string[] = [];
    for (const { fullType, resource } of allResources(t.resources)) {
        for (const dep of resource.dependsOn ?? []) {
            const m = /^\[resourceId\('([^']+)'/.exec(dep);
            if (m && !declared.has(m[1].toLowerCase())) problems.push(`${fullType}: depends on ${m[1]}, which the template does not deploy`);
        }
    }
    return problems;
}

/** Secret-looking parameters are secure types without defaults. */
function secretParameterProblems(t: Obj): string[] {
    const problems: string[] = [];
    for (const [name, def] of Object.entries<Obj>(t.parameters ?? {})) {
        if (!SECRET_NAME.test(name) || NOT_SECRET.has(name)) continue;
        // An empty default (nothing to keep: e.g. no validator keys when the validators run elsewhere) holds no secret.
        const empty = def.defaultValue === '' || (isObj(def.defaultValue) && Object.keys(def.defaultValue).length === 0);
        if ('defaultValue' in def && !empty) problems.push(`parameter ${name} looks secret and has a defaultValue`);
        if (!['securestring', 'secureobject'].includes(String(def.type).toLowerCase())) problems.push(`parameter ${name} looks secret and is ${def.type}, not securestring/secureObject`);
    }
    return problems;
}

function literalSecrets(value: unknown): string[] {
    return strings(value)
        .filter(([, s]) => !isExpression(s) && SECRET_VALUE.test(s))
        .map(([at]) => `${at}: a literal secret`);
}

/** Security rule objects behind a `securityRules` value: inline arrays, or variables an expression combines. */
function ruleObjects(t: Obj, value: unknown, depth = 0): Obj[] {
    if (depth > 5) return [];
    if (Array.isArray(value)) return value.flatMap((v) => ruleObjects(t, v, depth + 1));
    if (typeof value === 'string' && isExpression(value)) return [...value.matchAll(VAR_REF)].flatMap((m) => ruleObjects(t, t.variables?.[m[1]], depth + 1));
    if (isObj(value) && isObj(value.properties)) return [value];
    return [];
}

/** Every NSG rule a template can deploy: inline in NSGs and standalone securityRules resources. */
function securityRules(t: Obj): Obj[] {
    return allResources(t.resources).flatMap(({ fullType, resource }) => {
        const type = fullType.toLowerCase();
        if (type === 'microsoft.network/networksecuritygroups') return ruleObjects(t, resource.properties?.securityRules);
        if (type === 'microsoft.network/networksecuritygroups/securityrules') return [resource];
        return [];
    });
}

/** A literal, or an exact `[parameters('x')]` resolved to its default (unknown otherwise). */
function literal(t: Obj, value: unknown): unknown {
    if (typeof value !== 'string') return value;
    const m = /^\[parameters\('([^']+)'\)\]$/.exec(value);
    return m ? t.parameters?.[m[1]]?.defaultValue : value;
}

function sourcesOf(t: Obj, rule: Obj): unknown[] {
    const p = rule.properties;
    const many = literal(t, p.sourceAddressPrefixes);
    return [literal(t, p.sourceAddressPrefix), ...(Array.isArray(many) ? many : [many])].filter((s) => s !== undefined);
}

function coversPort(t: Obj, rule: Obj, port: number): boolean {
    const p = rule.properties;
    const rangesValue = literal(t, p.destinationPortRanges);
    const ranges = [literal(t, p.destinationPortRange), ...(Array.isArray(rangesValue) ? rangesValue : [rangesValue])].filter((r) => r !== undefined);
    return ranges.some((r) => {
        if (typeof r === 'number') return r === port;
        if (typeof r !== 'string') return true; // unknown: assume it does
        if (r.trim() === '*' || isExpression(r)) return true;
        const m = /^(\d+)(?:\s*-\s*(\d+))?$/.exec(r.trim());
        if (!m) return true;
        const low = Number(m[1]);
        const high = m[2] === undefined ? low : Number(m[2]);
        return port >= low && port <= high;
    });
}

const inboundAllow = (rule: Obj) => /^inbound$/i.test(rule.properties.direction ?? '') && /^allow$/i.test(rule.properties.access ?? '');

/** Inbound allow rules that open the ledger RPC port to everyone. */
function openRpcRules(t: Obj): string[] {
    return securityRules(t)
        .filter((r) => inboundAllow(r) && coversPort(t, r, RPC_PORT))
        .filter((r) => sourcesOf(t, r).some((s) => typeof s === 'string' && OPEN_SOURCES.has(s.trim().toLowerCase())))
        .map((r) => `security rule ${r.name}: allows ${RPC_PORT} from anywhere`);
}

/** Every static check applied to one template. */
function templateProblems(t: Obj): string[] {
    return [
        ...(t.$schema === TEMPLATE_SCHEMA ? [] : ['$schema is not the deploymentTemplate schema']),
        ...(typeof t.contentVersion === 'string' ? [] : ['no contentVersion']),
        ...(Array.isArray(t.resources) ? [] : ['no resources array']),
        ...undeclaredReferences(t),
        ...expressionSyntax(t),
        ...resourceProblems(t),
        ...dependsOnProblems(t),
        ...secretParameterProblems(t),
        ...literalSecrets(t),
        ...openRpcRules(t),
    ];
}

// ------------------------------------------------------------------ helpers for the content checks

const ofType = (t: Obj, type: string) => allResources(t.resources).filter((r) => r.fullType.toLowerCase() === type.toLowerCase()).map((r) => r.resource);
const one = (t: Obj, type: string): Obj => {
    const found = ofType(t, type);
    expect(found).toHaveLength(1);
    return found[0];
};
const appSettings = (t: Obj): Map<string, string> =>
    new Map((one(t, 'Microsoft.Web/sites').properties.siteConfig.appSettings as Array<{ name: string; value: string }>).map((s) => [s.name, String(s.value)]));

/** Role definition GUIDs assigned to the app per scope resource type (`Microsoft.Storage/storageAccounts` → [...]). */
function roleGrants(t: Obj): Map<string, Set<string>> {
    const grants = new Map<string, Set<string>>();
    for (const ra of ofType(t, 'Microsoft.Authorization/roleAssignments')) {
        const scopeType = /^\[format\('([^{]+)\/\{0\}'/.exec(ra.scope ?? '')?.[1] ?? String(ra.scope);
        const def: string = ra.properties.roleDefinitionId;
        const fromVariables = [...def.matchAll(VAR_REF)].flatMap((m) => strings(t.variables?.[m[1]]).map(([, s]) => s));
        const guids = [...[def, ...fromVariables].join(' ').matchAll(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/gi)].map((m) => m[0].toLowerCase());
        const set = grants.get(scopeType) ?? new Set<string>();
        guids.forEach((g) => set.add(g));
        grants.set(scopeType, set);
    }
    return grants;
}

const ROLE = {
    storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b',
    storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88',
    storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3',
    keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7',
    keyVaultCryptoOfficer: '14b46e9e-c2b7-41b4-b07b-48a6ebf60603',
    serviceBusDataOwner: '090c5cfd-751d-490a-894a-3ce6f1109419',
    rbacAdministrator: 'f58310d9-a9f6-439a-9e8d-f62e7b41a168',
    monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb',
    contributor: 'b24988ac-6180-42a0-ab88-20f7382dd24c',
};

/** Values for settings a template computes at deployment time, to run them through the app's own validation. */
const sample: Record<string, string> = {
    ...(JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'local.settings.sample.json'), 'utf8')) as { Values: Record<string, string> }).Values,
    FLEXCHANGE_ORG_ID: 'acme',
    FLEXCHANGE_CORE_URL: 'https://core.flexchange.example',
    FLEXCHANGE_MAIL_FROM: 'DoNotReply@example.azurecomm.net',
    FLEXCHANGE_LEDGER_RPC_URLS: 'http://10.20.2.4:8545',
    AzureWebJobsStorage__accountName: 'stfxcore1234',
    FLEXCHANGE_ACS_ENDPOINT: 'https://fx-acs.europe.communication.azure.com',
    FLEXCHANGE_SERVICEBUS_RESOURCE_ID: '/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-core/providers/Microsoft.ServiceBus/namespaces/sb-fx-core',
    // What the operator passes to core.json for member deployments (infra/README.md).
    FLEXCHANGE_PUBLIC_URL: 'https://fx-core-func-abc123.azurewebsites.net',
    FLEXCHANGE_MEMBER_SUBSCRIPTION_ID: '00000000-1111-2222-3333-444444444444',
    FLEXCHANGE_MEMBER_LOCATION: 'uksouth',
    FLEXCHANGE_MEMBER_RESOURCE_GROUP_PREFIX: 'rg-flexchange',
    FLEXCHANGE_MEMBER_GENESIS_B64: Buffer.from('{"config":{"chainId":4242}}').toString('base64'),
    FLEXCHANGE_MEMBER_NODE_SSH_KEY: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFlexchangeTestKey ops@example',
    FLEXCHANGE_MEMBER_ADDRESS_SPACE: '10.64.0.0/10',
    FLEXCHANGE_NODE_NETWORK_RANGES: '10.10.0.0/16,10.64.0.0/10',
    FLEXCHANGE_GRAPH_SERVICE_PRINCIPAL_ID: '3f1c2a9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b',
    FLEXCHANGE_GRAPH_APP_ROLE_IDS: '{"Org.Admin":"4a1c2a9e-5b7d-4e8f-9a0b-1c2d3e4f5a6b"}',
    FLEXCHANGE_INVITE_REDIRECT_URL: 'https://portal.flexchange.example/welcome',
    FLEXCHANGE_RELEASE_PACKAGE: 'app-package-fx-core-func-abc123/released-package.zip',
    FLEXCHANGE_LEDGER_BOOTNODES: `enode://${'ab'.repeat(64)}@10.10.3.4:30303,enode://${'cd'.repeat(64)}@10.10.3.5:30303`,
    FLEXCHANGE_BESU_VERSION: '25.11.0',
    FLEXCHANGE_BESU_SHA256: 'ab'.repeat(32),
    FLEXCHANGE_BESU_DOWNLOAD_URL: 'https://github.com/hyperledger/besu/releases/download/25.11.0/besu-25.11.0.tar.gz',
    FLEXCHANGE_CORE_VNET_ID: '/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-core/providers/Microsoft.Network/virtualNetworks/fx-vnet',
};
const settingsEnv = (settings: Map<string, string>) =>
    Object.fromEntries([...settings].map(([name, value]) => [name, isExpression(value) ? (sample[name] ?? 'deployment-time-value') : value]));

// ------------------------------------------------------------------ tests

describe('infra/ file set', () => {
    it('has the core and member templates, a parameter file for each, and no unclassified JSON', () => {
        expect(templateFiles).toEqual(expect.arrayContaining(['core.json', 'member.json']));
        expect(parameterFiles).toEqual(expect.arrayContaining(['core.parameters.json', 'member.parameters.json']));
        for (const f of jsonFiles) expect(templateFiles.includes(f) || parameterFiles.includes(f) || NOT_TEMPLATES.has(f)).toBe(true);
    });
});

describe.each(templateFiles)('template %s', (file) => {
    let t: Obj;
    beforeAll(() => {
        t = load(file);
    });

    it('is a deployment template with contentVersion and resources', () => {
        expect(t.$schema).toBe(TEMPLATE_SCHEMA);
        expect(t.contentVersion).toMatch(/^\d+\.\d+\.\d+\.\d+$/);
        expect(Array.isArray(t.resources) && t.resources.length > 0).toBe(true);
    });

    it('references only declared parameters and variables, in well-formed expressions', () => {
        expect(undeclaredReferences(t)).toEqual([]);
        expect(expressionSyntax(t)).toEqual([]);
        expect(dependsOnProblems(t)).toEqual([]);
    });

    it('gives every resource a type, a name and a dated apiVersion', () => {
        expect(resourceProblems(t)).toEqual([]);
        expect(allResources(t.resources).length).toBeGreaterThan(10);
    });

    it('has no secret parameter defaults, only secure secret parameters, and no literal keys', () => {
        expect(secretParameterProblems(t)).toEqual([]);
        expect(literalSecrets(t)).toEqual([]);
    });

    it('never opens the ledger RPC port to everyone', () => {
        expect(openRpcRules(t)).toEqual([]);
    });

    it('passes every static check at once (the set the self-check below exercises)', () => {
        expect(templateProblems(t)).toEqual([]);
    });

    // Follows Microsoft's Flex Consumption ARM sample (Azure-Samples/azure-functions-flex-consumption-samples, IaC/armtemplate/azuredeploy.json).
    it('runs the app on Flex Consumption (FC1), Node 22, from its deployment container, with a system identity, HTTPS only and VNet integration', () => {
        const plan = one(t, 'Microsoft.Web/serverfarms');
        expect(plan.sku).toEqual({ name: 'FC1', tier: 'FlexConsumption' });
        expect(plan.kind).toBe('functionapp');
        expect(plan.properties.reserved).toBe(true);
        const site = one(t, 'Microsoft.Web/sites');
        expect(site.kind).toBe('functionapp,linux');
        expect(site.identity).toEqual({ type: 'SystemAssigned' });
        expect(site.properties.httpsOnly).toBe(true);
        expect(site.properties.virtualNetworkSubnetId).toContain("variables('functionsSubnetName')");
        const config = site.properties.functionAppConfig;
        expect(config.runtime).toEqual({ name: 'node', version: '22' });
        expect(config.deployment.storage).toMatchObject({ type: 'blobContainer', authentication: { type: 'SystemAssignedIdentity' } });
        expect(config.deployment.storage.value).toContain("variables('deploymentContainer')");
        expect(config.scaleAndConcurrency).toEqual({ maximumInstanceCount: "[parameters('maximumInstanceCount')]", instanceMemoryMB: "[parameters('instanceMemoryMB')]", alwaysReady: [{ name: 'http', instanceCount: "[parameters('alwaysReadyHttp')]" }] });
        expect(one(t, 'Microsoft.Storage/storageAccounts/blobServices/containers').name).toContain("variables('deploymentContainer')");
        // What Flex Consumption refuses or ignores is not there.
        expect(site.properties.siteConfig.linuxFxVersion).toBeUndefined();
        expect(site.properties.siteConfig.minTlsVersion).toBe('1.2');
        const vnet = one(t, 'Microsoft.Network/virtualNetworks');
        const functionsSubnet = vnet.properties.subnets.find((s: Obj) => s.name === "[variables('functionsSubnetName')]");
        expect(t.variables.functionsSubnetName).toBe('functions');
        expect(functionsSubnet.properties.addressPrefix).toBe("[parameters('functionsSubnetPrefix')]");
        expect(functionsSubnet.properties.delegations).toEqual([{ name: 'flexConsumption', properties: { serviceName: 'Microsoft.App/environments' } }]);
    });

    it('sets no key, SAS or connection string: storage, mail, Service Bus and monitoring go by the app identity', () => {
        const settings = appSettings(t);
        for (const name of ['AzureWebJobsStorage', 'WEBSITE_CONTENTAZUREFILECONNECTIONSTRING', 'FLEXCHANGE_ACS_CONNECTION_STRING', 'FLEXCHANGE_SERVICEBUS_CONNECTION', 'FUNCTIONS_WORKER_RUNTIME', 'FUNCTIONS_EXTENSION_VERSION']) expect([name, settings.has(name)]).toEqual([name, false]);
        for (const [name, value] of settings) {
            expect([name, /listKeys\(|listConnectionStrings\(|AccountKey=|SharedAccessKey|sig=/i.test(value)]).toEqual([name, false]);
        }
        expect(settings.get('AzureWebJobsStorage__accountName')).toBe("[variables('storageName')]");
        expect(settings.get('FLEXCHANGE_ACS_ENDPOINT')).toContain("reference(resourceId('Microsoft.Communication/communicationServices'");
        // Application Insights' connection string names the resource; with local auth off, ingestion needs the identity's token.
        expect(settings.get('APPLICATIONINSIGHTS_AUTHENTICATION_STRING')).toBe('Authorization=AAD');
        expect(one(t, 'Microsoft.Insights/components').properties.DisableLocalAuth).toBe(true);
        // The Service Bus trigger's connection by namespace (`<connection>__fullyQualifiedNamespace`), with the identity.
        expect(settings.has('AzureWebJobsServiceBus__fullyQualifiedNamespace')).toBe(true);
        // And no resource of the template hands one out.
        expect(JSON.stringify(t)).not.toMatch(/listKeys\(|AuthorizationRules/);
    });

    it('keeps storage, Key Vault and Cosmos DB off the public network, reached through private endpoints with private DNS', () => {
        expect(one(t, 'Microsoft.Storage/storageAccounts').properties).toMatchObject({ publicNetworkAccess: 'Disabled', allowSharedKeyAccess: false, networkAcls: { defaultAction: 'Deny' } });
        expect(one(t, 'Microsoft.KeyVault/vaults').properties).toMatchObject({ publicNetworkAccess: 'Disabled', networkAcls: { defaultAction: 'Deny' } });
        expect(one(t, 'Microsoft.DocumentDB/databaseAccounts').properties).toMatchObject({ publicNetworkAccess: 'Disabled', disableLocalAuth: true });
        const links = t.variables.privateLinks as Obj[];
        expect(links.map((l) => [l.groupId, l.id.match(/resourceId\('([^']+)'/)[1]])).toEqual([
            ['blob', 'Microsoft.Storage/storageAccounts'],
            ['queue', 'Microsoft.Storage/storageAccounts'],
            ['table', 'Microsoft.Storage/storageAccounts'],
            ['vault', 'Microsoft.KeyVault/vaults'],
            ['Sql', 'Microsoft.DocumentDB/databaseAccounts'],
        ]);
        expect(links.map((l) => l.zone)).toEqual([
            "[format('privatelink.blob.{0}', environment().suffixes.storage)]",
            "[format('privatelink.queue.{0}', environment().suffixes.storage)]",
            "[format('privatelink.table.{0}', environment().suffixes.storage)]",
            'privatelink.vaultcore.azure.net',
            'privatelink.documents.azure.com',
        ]);
        for (const type of ['Microsoft.Network/privateDnsZones', 'Microsoft.Network/privateDnsZones/virtualNetworkLinks', 'Microsoft.Network/privateEndpoints', 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups']) {
            expect([type, one(t, type).copy.count]).toEqual([type, "[length(variables('privateLinks'))]"]);
        }
        const endpoint = one(t, 'Microsoft.Network/privateEndpoints');
        expect(endpoint.properties.subnet.id).toContain("variables('privateEndpointsSubnetName')");
        expect(endpoint.properties.privateLinkServiceConnections[0].properties).toEqual({ privateLinkServiceId: "[variables('privateLinks')[copyIndex()].id]", groupIds: ["[variables('privateLinks')[copyIndex()].groupId]"] });
        const subnet = one(t, 'Microsoft.Network/virtualNetworks').properties.subnets.find((s: Obj) => s.name === "[variables('privateEndpointsSubnetName')]");
        expect(subnet.properties).toEqual({ addressPrefix: "[parameters('privateEndpointsSubnetPrefix')]", privateEndpointNetworkPolicies: 'Disabled' });
    });

    it('alerts on ALERT lines, failed functions and nodes going down, and sends diagnostics to the one workspace', () => {
        const alerts = t.variables.alerts as Obj[];
        expect(alerts.map((a) => [a.name, a.query])).toEqual([
            ['alert-lines', "traces | where message startswith 'ALERT '"],
            ['failed-functions', 'requests | where success == false'],
            ['node-down', "traces | where message has 'node.down' or message has '\"to\":\"down\"'"],
        ]);
        const rule = one(t, 'Microsoft.Insights/scheduledQueryRules');
        expect(rule.copy.count).toBe("[length(variables('alerts'))]");
        expect(rule.properties.scopes).toEqual(["[resourceId('Microsoft.Insights/components', variables('insightsName'))]"]);
        expect(rule.properties.criteria.allOf[0]).toMatchObject({ timeAggregation: 'Count', operator: 'GreaterThan', threshold: 0 });
        expect(one(t, 'Microsoft.Insights/actionGroups').condition).toBe("[not(empty(parameters('alertEmail')))]");
        const diagnosed = ofType(t, 'Microsoft.Insights/diagnosticSettings').map((d) => /^\[format\('([^{]+)\/\{0\}/.exec(d.scope)![1]);
        expect(diagnosed).toEqual(expect.arrayContaining(['Microsoft.Web/sites', 'Microsoft.KeyVault/vaults', 'Microsoft.DocumentDB/databaseAccounts', 'Microsoft.Storage/storageAccounts']));
        for (const d of ofType(t, 'Microsoft.Insights/diagnosticSettings')) expect(d.properties.workspaceId).toBe("[resourceId('Microsoft.OperationalInsights/workspaces', variables('workspaceName'))]");
    });

    it('sets every application setting the app needs to start, with valid fixed values', () => {
        const settings = appSettings(t);
        expect(settings.get('FLEXCHANGE_CREDENTIAL')).toBe('managed-identity');
        const role = file.startsWith('member') ? 'member' : 'core';
        expect(settings.get('FLEXCHANGE_ROLE')).toBe(role);
        // host.json's %SETTING% references (the task hub): set, the core's fixed, each member's its own.
        const hostJson = readFileSync(path.join(__dirname, '..', '..', 'host.json'), 'utf8');
        for (const [, name] of hostJson.matchAll(/%([A-Za-z0-9_]+)%/g)) expect([name, settings.get(name)]).toEqual([name, expect.any(String)]);
        // Entra ID v2 tokens name the API by its client id: accepted beside the identifier URI when the operator gives it.
        expect(settings.get('FLEXCHANGE_AUTH_AUDIENCES')).toBe("[if(empty(parameters('apiAudiences')), parameters('apiAudience'), parameters('apiAudiences'))]");
        expect(t.parameters.apiAudiences).toMatchObject({ type: 'string', defaultValue: '' });
        expect(settings.get('FLEXCHANGE_TASK_HUB')).toBe(role === 'core' ? CORE_TASK_HUB : "[if(empty(parameters('taskHub')), concat('member', parameters('namePrefix')), parameters('taskHub'))]");
        const loaded = loadSettings(settingsEnv(settings));
        expect(loaded.FLEXCHANGE_ROLE).toBe(role);
        expect(loaded.FLEXCHANGE_CREDENTIAL).toBe('managed-identity');
        expect(loaded.COSMOS_KEY).toBeUndefined();
        expect(loaded.AzureWebJobsStorage).toBeUndefined();
        expect(settings.get('APPLICATIONINSIGHTS_CONNECTION_STRING')).toContain("reference(resourceId('Microsoft.Insights/components'");
        expect(settings.get('COSMOS_ENDPOINT')).toContain('.documentEndpoint');
        expect(settings.get('FLEXCHANGE_KEYVAULT_URL')).toContain('.vaultUri');
        if (role === 'core') {
            // Everything the ARM deployment controller needs to onboard a member is a parameter or computed here,
            // so onboarding in Azure does not stop at `Unavailable` for a missing setting.
            const source = { claims: new MemoryRepository<NetworkClaim>((c) => c.id), bootnodes: async () => [] };
            const credential = { getToken: async () => ({ token: 't', expiresOnTimestamp: Date.now() + 60_000 }) };
            // The package members get is the one the core runs: its own deployment container's.
            expect(settings.get('FLEXCHANGE_RELEASE_PACKAGE')).toBe("[format('{0}/released-package.zip', variables('deploymentContainer'))]");
            expect(loaded.FLEXCHANGE_RELEASE_PACKAGE).toEqual({ container: 'app-package-fx-core-func-abc123', name: 'released-package.zip' });
            expect(() => armDeploymentController(loaded, credential, source, { blobs: {} as BlobStore, source: loaded.FLEXCHANGE_RELEASE_PACKAGE! })).not.toThrow();
            // The public URL defaults to the app's own host; the member range lies inside the node network it sets.
            expect(settings.get('FLEXCHANGE_PUBLIC_URL')).toBe("[if(empty(parameters('publicUrl')), format('https://{0}', variables('appDefaultHostName')), parameters('publicUrl'))]");
            expect(settings.get('FLEXCHANGE_NODE_NETWORK_RANGES')).toBe("[format('{0},{1}', parameters('vnetAddressPrefix'), parameters('memberAddressSpace'))]");
            // The directory assigns Deployment.Member and users' roles through Graph with these (printed by scripts/azure/appRegistration.ts).
            for (const name of ['FLEXCHANGE_GRAPH_SERVICE_PRINCIPAL_ID', 'FLEXCHANGE_GRAPH_APP_ROLE_IDS', 'FLEXCHANGE_INVITE_REDIRECT_URL']) expect([name, settings.get(name)]).toEqual([name, expect.stringMatching(/^\[parameters\('/)]);
        }
    });

    it('hardens storage, Key Vault and Cosmos DB, and creates the containers the app uses', () => {
        const storage = one(t, 'Microsoft.Storage/storageAccounts');
        expect(storage.properties).toMatchObject({ minimumTlsVersion: 'TLS1_2', allowBlobPublicAccess: false, supportsHttpsTrafficOnly: true });
        const vault = one(t, 'Microsoft.KeyVault/vaults');
        expect(vault.properties).toMatchObject({ enableRbacAuthorization: true, enableSoftDelete: true, enablePurgeProtection: true });
        const cosmos = one(t, 'Microsoft.DocumentDB/databaseAccounts');
        expect(cosmos.properties.disableLocalAuth).toBe(true);
        expect(one(t, 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases').properties.resource.id).toBe("[variables('cosmosDatabase')]");
        expect(t.variables.cosmosDatabase).toBe('flexchange');
        // With local auth off the app cannot create containers itself: the template must create exactly the app's.
        const containers = one(t, 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers');
        expect(containers.copy.count).toBe("[length(variables('cosmosContainers'))]");
        expect(t.variables.cosmosContainers).toEqual(CONTAINERS.map((c) => ({ id: c.id, partitionKey: (c.partitionKey as { paths: string[] }).paths[0] })));
        // Version 2 hashing, as shared/documents/containers.ts makes them locally (it cannot be changed later).
        expect(containers.properties.resource.partitionKey).toMatchObject({ kind: 'Hash', version: 2 });
    });

    it('grants the app identity its data roles with deterministic assignment names', () => {
        const grants = roleGrants(t);
        expect([...(grants.get('Microsoft.Storage/storageAccounts') ?? [])].sort()).toEqual([ROLE.storageBlobDataOwner, ROLE.storageQueueDataContributor, ROLE.storageTableDataContributor].sort());
        expect([...(grants.get('Microsoft.KeyVault/vaults') ?? [])].sort()).toEqual([ROLE.keyVaultSecretsOfficer, ROLE.keyVaultCryptoOfficer].sort());
        // The table the devhost's vault checks callers against (shared/deployment/dataRoles.ts) grants exactly these, core and member alike.
        const vaultIds = (g: DataGrant[]) => g.filter((x) => x.scope === 'own-vault').map((x) => DATA_ROLE_IDS[x.role]).sort();
        expect(vaultIds(dataGrants({ role: 'core' }))).toEqual([...(grants.get('Microsoft.KeyVault/vaults') ?? [])].sort());
        expect(vaultIds(dataGrants({ role: 'member', orgId: 'acme' }))).toEqual([...(grants.get('Microsoft.KeyVault/vaults') ?? [])].sort());
        // Monitoring with Entra auth, and mail with the identity.
        expect([...(grants.get('Microsoft.Insights/components') ?? [])]).toEqual([ROLE.monitoringMetricsPublisher]);
        expect([...(grants.get('Microsoft.Communication/communicationServices') ?? [])]).toEqual([ROLE.contributor]);
        // The app identity's (the validators' own key readers are checked with the validators).
        for (const ra of ofType(t, 'Microsoft.Authorization/roleAssignments').filter((a) => !a.properties.principalId.includes('Microsoft.Compute/virtualMachines'))) {
            expect(ra.name).toMatch(/^\[guid\(/);
            expect(ra.properties.principalId).toBe("[reference(resourceId('Microsoft.Web/sites', variables('appName')), '2024-04-01', 'full').identity.principalId]");
            expect(ra.properties.principalType).toBe('ServicePrincipal');
            expect(ra.properties.roleDefinitionId).toMatch(/^\[subscriptionResourceId\('Microsoft\.Authorization\/roleDefinitions'/);
        }
        const cosmosGrant = one(t, 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments');
        expect(cosmosGrant.name).toContain('guid(');
        expect(t.variables.cosmosDataContributor).toBe('00000000-0000-0000-0000-000000000002');
        // ...the table's document-database row, which the devhost's Cosmos front checks.
        expect(dataGrants({ role: 'member', orgId: 'acme' }).filter((g) => g.scope === 'own-database').map((g) => DATA_ROLE_IDS[g.role])).toEqual([t.variables.cosmosDataContributor]);
        expect(cosmosGrant.properties.roleDefinitionId).toContain("variables('cosmosDataContributor')");
        expect(cosmosGrant.properties.principalId).toContain('.identity.principalId');
    });

    it('has workspace-based Application Insights and Communication Services Email', () => {
        one(t, 'Microsoft.OperationalInsights/workspaces');
        expect(one(t, 'Microsoft.Insights/components').properties.WorkspaceResourceId).toContain('Microsoft.OperationalInsights/workspaces');
        one(t, 'Microsoft.Communication/emailServices');
        expect(one(t, 'Microsoft.Communication/communicationServices').properties.linkedDomains).toHaveLength(1);
    });
});

describe('core template', () => {
    let t: Obj;
    beforeAll(() => {
        t = load('core.json');
    });

    it('declares the documented parameters and outputs', () => {
        expect(Object.keys(t.parameters)).toEqual(expect.arrayContaining(['namePrefix', 'location', 'tenantId', 'apiAudience', 'ledgerRpcUrls', 'chainId', 'mailFrom']));
        expect(t.parameters.namePrefix).toMatchObject({ type: 'string', minLength: 3, maxLength: 11 });
        expect(t.parameters.location.defaultValue).toBe('[resourceGroup().location]');
        expect(t.parameters.tenantId.defaultValue).toBe('[subscription().tenantId]');
        expect(t.parameters.chainId.type).toBe('int');
        expect(Object.keys(t.outputs)).toEqual(expect.arrayContaining(['functionAppName', 'functionAppHostName', 'vaultUri', 'cosmosEndpoint', 'serviceBusNamespaceFqdn', 'principalId']));
    });

    it('creates the Service Bus entities the devhost broker mirrors, and lets the app own the namespace', () => {
        const entities = load('servicebus.entities.json') as { queues: Array<Obj>; topics: Array<Obj> };
        expect(one(t, 'Microsoft.ServiceBus/namespaces').sku.name).toBe('Standard');
        const topic = one(t, 'Microsoft.ServiceBus/namespaces/topics');
        expect(topic.name).toContain("variables('eventsTopic')");
        expect(t.variables.eventsTopic).toBe(entities.topics[0].name);
        expect(topic.properties).toMatchObject({ requiresDuplicateDetection: true, duplicateDetectionHistoryTimeWindow: 'PT10M' });
        expect(entities.topics[0].duplicateDetectionWindowSeconds).toBe(600);
        const queue = one(t, 'Microsoft.ServiceBus/namespaces/queues');
        expect(t.variables.workQueue).toBe(entities.queues[0].name);
        expect(queue.properties).toMatchObject({ maxDeliveryCount: entities.queues[0].maxDeliveryCount, lockDuration: 'PT1M' });
        expect(entities.queues[0].lockDurationSeconds).toBe(60);
        expect([...(roleGrants(t).get('Microsoft.ServiceBus/namespaces') ?? [])].sort()).toEqual([ROLE.serviceBusDataOwner, ROLE.rbacAdministrator].sort());
        // ...which is the core's row of the table the devhost's broker checks (shared/deployment/dataRoles.ts).
        expect(dataGrants({ role: 'core' }).filter((g) => g.scope === 'service-bus').map((g) => DATA_ROLE_IDS[g.role])).toEqual([ROLE.serviceBusDataOwner]);
        // The core grants each member's identity its own rows there at onboarding (armDeploymentController.ts): it may
        // assign exactly the roles the table gives members on the bus, to service principals, and nothing else.
        const admin = ofType(t, 'Microsoft.Authorization/roleAssignments').find((ra) => ra.properties.roleDefinitionId.includes("variables('rbacAdministratorRole')"))!;
        expect(admin.properties.conditionVersion).toBe('2.0');
        const memberBusRoles = dataGrants({ role: 'member', orgId: 'acme' }).filter((g) => g.scope === 'service-bus').map((g) => DATA_ROLE_IDS[g.role]);
        expect(memberBusRoles).toEqual([t.variables.serviceBusDataReceiverRole]);
        expect(admin.properties.condition).toContain("variables('serviceBusDataReceiverRole')");
        expect(admin.properties.condition).toMatch(/roleAssignments\/write.*RoleDefinitionId\] ForAnyOfAnyValues:GuidEquals \{\{\{0\}\}\}.*PrincipalType.*ServicePrincipal.*roleAssignments\/delete/);
        expect(appSettings(t).get('FLEXCHANGE_SERVICEBUS_RESOURCE_ID')).toBe("[resourceId('Microsoft.ServiceBus/namespaces', variables('serviceBusName'))]");
        const settings = appSettings(t);
        expect(settings.get('FLEXCHANGE_SERVICEBUS_NAMESPACE')).toBe(settings.get('AzureWebJobsServiceBus__fullyQualifiedNamespace'));
        // Standard has no private endpoints (infra/README.md): Entra ID only (no SAS keys) is what restricts it.
        expect(one(t, 'Microsoft.ServiceBus/namespaces').properties).toMatchObject({ disableLocalAuth: true, minimumTlsVersion: '1.2' });
        expect(ofType(t, 'Microsoft.ServiceBus/namespaces/AuthorizationRules')).toEqual([]);
    });

    it('runs the QBFT validators: 0, 4, 7 or 10 VMs at fixed addresses on the ledger subnet, on the pinned Besu release', () => {
        expect(t.parameters.validatorCount).toMatchObject({ type: 'int', defaultValue: 4, allowedValues: [0, 4, 7, 10] });
        const vms = one(t, 'Microsoft.Compute/virtualMachines');
        expect(vms.copy.count).toBe("[parameters('validatorCount')]");
        expect(vms.identity.type).toBe('SystemAssigned');
        expect(vms.properties.osProfile.linuxConfiguration.disablePasswordAuthentication).toBe(true);
        expect(vms.properties.storageProfile.imageReference).toMatchObject({ publisher: 'Canonical', offer: 'ubuntu-24_04-lts', sku: 'server' });
        const nic = one(t, 'Microsoft.Network/networkInterfaces');
        expect(nic.properties.ipConfigurations[0].properties).toMatchObject({ privateIPAllocationMethod: 'Static', privateIPAddress: "[cidrHost(parameters('ledgerSubnetPrefix'), add(3, copyIndex()))]" });
        expect(nic.properties.ipConfigurations[0].properties.publicIPAddress).toBeUndefined();
        // Every node boots from the validators' enode URLs, at those addresses; the app's RPC defaults to them.
        const loops = Object.fromEntries((t.variables.copy as Obj[]).map((c) => [c.name, c.input]));
        expect(loops.validatorEnodes).toBe("[format('enode://{0}@{1}:30303', parameters('validatorPublicKeys')[copyIndex('validatorEnodes')], cidrHost(parameters('ledgerSubnetPrefix'), add(3, copyIndex('validatorEnodes'))))]");
        expect(loops.validatorRpcUrls).toBe("[format('http://{0}:8545', cidrHost(parameters('ledgerSubnetPrefix'), add(3, copyIndex('validatorRpcUrls'))))]");
        expect(vms.properties.osProfile.customData).toBe(
            "[base64(format(variables('validatorCloudInit'), parameters('chainId'), join(variables('validatorEnodes'), ','), parameters('memberGenesisJsonBase64'), variables('besuUrl'), parameters('besuSha256'), variables('vaultName'), environment().suffixes.keyvaultDns, format('{0}{1}', variables('validatorSecretPrefix'), copyIndex())))]",
        );
        const { execStart, runcmd } = besuCloudInit(t.variables.validatorCloudInit, 8);
        expect(execStart).toContain('--rpc-http-api=ETH,NET,WEB3,TXPOOL,QBFT ');
        // Its key from the vault with its own identity, before Besu starts; retried until the secret is readable.
        const key = runcmd.findIndex((c) => c.includes('metadata/identity/oauth2/token') && c.includes("'https://{5}{6}/secrets/{7}?api-version=7.4'") && c.includes('> /var/lib/besu/key'));
        expect(key).toBeGreaterThan(0);
        expect(runcmd.indexOf('systemctl enable --now besu.service')).toBeGreaterThan(key);
        // The validators are every member's first bootnodes (static-nodes and the member template's bootnodes).
        expect(appSettings(t).get('FLEXCHANGE_LEDGER_BOOTNODES')).toBe("[join(variables('validatorEnodes'), ',')]");
        // The members run the same release: the core hands it on.
        const settings = appSettings(t);
        expect(settings.get('FLEXCHANGE_BESU_VERSION')).toBe("[parameters('besuVersion')]");
        expect(settings.get('FLEXCHANGE_BESU_SHA256')).toBe("[parameters('besuSha256')]");
        expect(settings.get('FLEXCHANGE_BESU_DOWNLOAD_URL')).toBe("[variables('besuUrl')]");
    });

    it('keeps each validator key in the vault, readable by that validator alone', () => {
        expect(t.parameters.validatorKeys).toMatchObject({ type: 'secureObject', defaultValue: {} });
        const secret = one(t, 'Microsoft.KeyVault/vaults/secrets');
        expect(secret.copy.count).toBe("[parameters('validatorCount')]");
        expect(secret.properties.value).toBe("[parameters('validatorKeys').keys[copyIndex()]]");
        const readers = ofType(t, 'Microsoft.Authorization/roleAssignments').filter((a) => a.properties.principalId.includes('Microsoft.Compute/virtualMachines'));
        expect(readers).toHaveLength(1);
        expect(readers[0].copy.count).toBe("[parameters('validatorCount')]");
        expect(readers[0].scope).toBe("[format('Microsoft.KeyVault/vaults/{0}/secrets/{1}{2}', variables('vaultName'), variables('validatorSecretPrefix'), copyIndex())]");
        expect(readers[0].properties.principalId).toBe("[reference(resourceId('Microsoft.Compute/virtualMachines', format('{0}-{1}', variables('validatorName'), copyIndex())), '2024-03-01', 'full').identity.principalId]");
        expect(readers[0].properties.roleDefinitionId).toContain("variables('keyVaultSecretsUserRole')");
        expect(t.variables.keyVaultSecretsUserRole).toBe('4633458b-17de-408a-b874-0445c86b69e6');
    });

    it('opens the ledger subnet to RPC from the functions subnet and p2p from the consortium only, and lets the app peer its VNet', () => {
        const rules = ruleObjects(t, t.variables.ledgerRules);
        const allows = rules.filter(inboundAllow);
        expect(allows.filter((r) => coversPort(t, r, RPC_PORT)).map((r) => r.properties.sourceAddressPrefix)).toEqual(["[parameters('functionsSubnetPrefix')]"]);
        const p2p = allows.filter((r) => coversPort(t, r, P2P_PORT));
        expect(p2p.map((r) => r.properties.protocol).sort()).toEqual(['Tcp', 'Udp']);
        for (const r of p2p) expect(r.properties.sourceAddressPrefixes).toBe("[variables('consortiumRanges')]");
        // The consortium: the core's network and the members' space (each member's VNet is allocated inside it).
        expect(t.variables.consortiumRanges).toBe("[createArray(parameters('vnetAddressPrefix'), parameters('memberAddressSpace'))]");
        expect(rules.find((r) => r.properties.priority === 4096)?.properties).toMatchObject({ access: 'Deny', sourceAddressPrefix: '*', destinationPortRange: '*' });
        const subnet = one(t, 'Microsoft.Network/virtualNetworks').properties.subnets.find((x: Obj) => x.name === "[variables('ledgerSubnetName')]");
        expect(subnet.properties.networkSecurityGroup.id).toBe("[resourceId('Microsoft.Network/networkSecurityGroups', variables('ledgerNsgName'))]");
        // The core's side of each member peering (armDeploymentController.ts) needs Network Contributor on its VNet.
        expect([...(roleGrants(t).get('Microsoft.Network/virtualNetworks') ?? [])]).toEqual([t.variables.networkContributorRole]);
        expect(appSettings(t).get('FLEXCHANGE_CORE_VNET_ID')).toBe("[resourceId('Microsoft.Network/virtualNetworks', variables('vnetName'))]");
    });

    it('points the app at the configured ledger and the tenant\'s issuer', () => {
        const settings = appSettings(t);
        expect(settings.get('FLEXCHANGE_LEDGER_RPC_URLS')).toBe("[variables('ledgerRpcUrls')]");
        // The given nodes, or the core's own validators.
        expect(t.variables.ledgerRpcUrls).toBe("[if(empty(parameters('ledgerRpcUrls')), join(variables('validatorRpcUrls'), ','), parameters('ledgerRpcUrls'))]");
        expect(settings.get('FLEXCHANGE_CHAIN_ID')).toBe("[string(parameters('chainId'))]");
        expect(settings.get('FLEXCHANGE_AUTH_AUDIENCE')).toBe("[parameters('apiAudience')]");
        expect(settings.get('FLEXCHANGE_AUTH_ISSUER')).toContain("parameters('tenantId')");
        expect(settings.get('FLEXCHANGE_AUTH_JWKS_URI')).toContain('/discovery/v2.0/keys');
    });
});

describe('member template', () => {
    let t: Obj;
    let rules: Obj[];
    beforeAll(() => {
        t = load('member.json');
        rules = securityRules(t);
    });

    it('declares the documented parameters and outputs', () => {
        expect(Object.keys(t.parameters)).toEqual(
            expect.arrayContaining(['namePrefix', 'orgId', 'location', 'chainId', 'bootnodes', 'allowedPeerAddressPrefixes', 'adminUsername', 'adminPublicKey', 'nodeCount', 'vmSize', 'coreApiUrl', 'authIssuer', 'authJwksUri', 'apiAudience', 'vnetAddressPrefix', 'functionsSubnetPrefix', 'nodesSubnetPrefix']),
        );
        expect(t.parameters.adminPublicKey.type).toBe('string');
        expect('defaultValue' in t.parameters.adminPublicKey).toBe(false);
        expect(t.parameters.nodeCount).toMatchObject({ type: 'int', defaultValue: 2, minValue: 1, maxValue: 5 });
        expect(t.parameters.vmSize.defaultValue).toBe('Standard_B2s');
        expect(t.parameters.adminUsername.defaultValue).toBe('flexadmin');
        expect(t.parameters.bootnodes.defaultValue).toBe('');
        expect(t.parameters.allowedPeerAddressPrefixes).toMatchObject({ type: 'array', defaultValue: [] });
        expect(Object.keys(t.outputs)).toEqual(expect.arrayContaining(['functionAppName', 'functionAppHostName', 'functionAppScmHostName', 'vaultUri', 'rpcFrontendIp', 'principalId']));
    });

    it('runs the app as the organisation\'s member deployment against its own nodes', () => {
        const settings = appSettings(t);
        expect(settings.get('FLEXCHANGE_ROLE')).toBe('member');
        expect(settings.get('FLEXCHANGE_ORG_ID')).toBe("[parameters('orgId')]");
        expect(settings.get('FLEXCHANGE_LEDGER_RPC_URLS')).toBe(
            "[format('http://{0}:8545', reference(resourceId('Microsoft.Network/loadBalancers', variables('lbName')), '2023-11-01').frontendIPConfigurations[0].properties.privateIPAddress)]",
        );
        expect(t.outputs.rpcFrontendIp.value).toContain('frontendIPConfigurations[0].properties.privateIPAddress');
        // Kudu's host as the platform names it (also for apps with a unique default host name): where the core publishes the release package.
        expect(t.outputs.functionAppScmHostName.value).toContain("equals(lambdaVariables('state').hostType, 'Repository')");
    });

    it('allows RPC 8545 only from the functions subnet (and the load balancer probe)', () => {
        const rpcAllows = rules.filter((r) => inboundAllow(r) && coversPort(t, r, RPC_PORT));
        const fromApps = rpcAllows.filter((r) => r.properties.sourceAddressPrefix !== 'AzureLoadBalancer');
        expect(fromApps.length).toBeGreaterThan(0);
        for (const r of fromApps) {
            expect(r.properties).toMatchObject({ sourceAddressPrefix: "[parameters('functionsSubnetPrefix')]", protocol: 'Tcp', destinationPortRange: '8545' });
            expect(r.properties.sourceAddressPrefixes).toBeUndefined();
        }
        expect(rpcAllows.filter((r) => r.properties.sourceAddressPrefix === 'AzureLoadBalancer').map((r) => r.properties.destinationPortRange)).toEqual(['8545']);
    });

    it('allows p2p 30303 (TCP and UDP) only from the allow-listed prefixes, and not at all when the list is empty', () => {
        const p2p = rules.filter((r) => inboundAllow(r) && coversPort(t, r, P2P_PORT));
        expect(p2p.map((r) => r.properties.protocol).sort()).toEqual(['Tcp', 'Udp']);
        for (const r of p2p) {
            expect(r.properties.sourceAddressPrefixes).toBe("[parameters('allowedPeerAddressPrefixes')]");
            expect(r.properties.sourceAddressPrefix).toBeUndefined();
            expect(r.properties.destinationPortRange).toBe('30303');
        }
        const nsg = one(t, 'Microsoft.Network/networkSecurityGroups');
        expect(nsg.properties.securityRules).toContain("if(empty(parameters('allowedPeerAddressPrefixes')), createArray(), variables('peerRules'))");
        expect(JSON.stringify(t.variables.peerRules)).not.toContain('rpcRules');
        for (const name of Object.keys(t.variables).filter((n) => n !== 'peerRules')) {
            expect(ruleObjects(t, t.variables[name]).filter((r) => coversPort(t, r, P2P_PORT) && inboundAllow(r))).toEqual([]);
        }
    });

    it('denies all other inbound traffic at priority 4096, and the nodes subnet carries that NSG', () => {
        const deny = rules.find((r) => r.properties.priority === 4096);
        expect(deny?.properties).toMatchObject({ direction: 'Inbound', access: 'Deny', protocol: '*', sourceAddressPrefix: '*', destinationPortRange: '*' });
        expect(new Set(rules.map((r) => r.properties.priority)).size).toBe(rules.length);
        const vnet = one(t, 'Microsoft.Network/virtualNetworks');
        const nodes = vnet.properties.subnets.find((s: Obj) => s.name === "[variables('nodesSubnetName')]");
        expect(nodes.properties.addressPrefix).toBe("[parameters('nodesSubnetPrefix')]");
        expect(nodes.properties.networkSecurityGroup.id).toBe("[resourceId('Microsoft.Network/networkSecurityGroups', variables('nodesNsgName'))]");
    });

    it('puts the nodes behind an internal load balancer, with no public IP and SSH keys only', () => {
        const lb = one(t, 'Microsoft.Network/loadBalancers');
        expect(lb.sku.name).toBe('Standard');
        for (const fe of lb.properties.frontendIPConfigurations) {
            expect(fe.properties.publicIPAddress).toBeUndefined();
            expect(fe.properties.subnet.id).toContain("variables('nodesSubnetName')");
        }
        expect(lb.properties.probes[0].properties).toMatchObject({ protocol: 'Tcp', port: 8545 });
        expect(lb.properties.loadBalancingRules[0].properties).toMatchObject({ protocol: 'Tcp', frontendPort: 8545, backendPort: 8545 });
        const vmss = one(t, 'Microsoft.Compute/virtualMachineScaleSets');
        expect(vmss.sku.capacity).toBe("[parameters('nodeCount')]");
        const profile = vmss.properties.virtualMachineProfile;
        for (const nic of profile.networkProfile.networkInterfaceConfigurations) {
            for (const ip of nic.properties.ipConfigurations) {
                expect(ip.properties.publicIPAddressConfiguration).toBeUndefined();
                expect(ip.properties.loadBalancerBackendAddressPools[0].id).toContain('Microsoft.Network/loadBalancers/backendAddressPools');
            }
        }
        expect(profile.osProfile.adminPassword).toBeUndefined();
        expect(profile.osProfile.linuxConfiguration.disablePasswordAuthentication).toBe(true);
        expect(profile.osProfile.linuxConfiguration.ssh.publicKeys[0].keyData).toBe("[parameters('adminPublicKey')]");
        expect(profile.storageProfile.imageReference).toMatchObject({ publisher: 'Canonical', offer: 'ubuntu-24_04-lts', sku: 'server' });
        // The only public IP is the NAT gateway's (outbound only).
        for (const pip of ofType(t, 'Microsoft.Network/publicIPAddresses')) expect(pip.name).toBe("[variables('natIpName')]");
        expect(one(t, 'Microsoft.Network/natGateways').properties.publicIpAddresses[0].id).toContain("variables('natIpName')");
    });

    it('starts the pinned Besu release from cloud-init as a transaction node, with the network id, genesis and bootnodes', () => {
        const customData: string = one(t, 'Microsoft.Compute/virtualMachineScaleSets').properties.virtualMachineProfile.osProfile.customData;
        expect(customData).toBe("[base64(format(variables('nodeCloudInit'), parameters('chainId'), parameters('bootnodes'), parameters('genesisJsonBase64'), parameters('besuDownloadUrl'), parameters('besuSha256')))]");
        const { execStart } = besuCloudInit(t.variables.nodeCloudInit, 5);
        expect(execStart).toContain('--rpc-http-api=ETH,NET,WEB3,TXPOOL ');
        expect(t.variables.nodeCloudInit).not.toContain('metadata/identity');
        // Its own key, made by Besu on first start.
        expect(t.parameters.besuSha256).toMatchObject({ type: 'string', minLength: 64, maxLength: 64 });
        expect('defaultValue' in t.parameters.besuSha256).toBe(false);
    });

    it("peers its VNet with the core's when given the core's VNet, and reports its own", () => {
        const peering = one(t, 'Microsoft.Network/virtualNetworks/virtualNetworkPeerings');
        expect(peering.condition).toBe("[not(empty(parameters('coreVnetId')))]");
        expect(peering.properties).toEqual({ remoteVirtualNetwork: { id: "[parameters('coreVnetId')]" }, allowVirtualNetworkAccess: true, allowForwardedTraffic: false, allowGatewayTransit: false, useRemoteGateways: false });
        // The core peers back with this (shared/deployment/armDeploymentController.ts).
        expect(t.outputs.vnetId.value).toBe("[resourceId('Microsoft.Network/virtualNetworks', variables('vnetName'))]");
    });
});

/**
 * A Besu node's cloud-init (format string with `placeholders` arguments): the release archive checked against its
 * SHA-256 before it is unpacked, no package source for the client, the consortium's genesis, and Besu started on
 * the network id with RPC on 8545 and p2p on 30303.
 */
function besuCloudInit(cloudInit: string, placeholders: number): { execStart: string; runcmd: string[] } {
    expect(cloudInit.startsWith('#cloud-config\n')).toBe(true);
    // format() reads braces as placeholders: only {0}..{n} may appear.
    expect(cloudInit.replace(new RegExp(`\\{[0-${placeholders - 1}]\\}`, 'g'), '')).not.toMatch(/[{}]/);
    const lines = cloudInit.split('\n');
    const execStart = lines.find((l) => l.trim().startsWith('ExecStart='))!;
    for (const flag of ['/opt/besu/bin/besu ', '--network-id={0}', '--genesis-file=/etc/besu/genesis.json', '--bootnodes={1}', '--rpc-http-enabled', '--rpc-http-host=0.0.0.0', '--rpc-http-port=8545', '--p2p-port=30303', '--sync-mode=FULL', '--data-path=/var/lib/besu']) expect(execStart).toContain(flag);
    const runcmd = lines.slice(lines.indexOf('runcmd:') + 1).filter(Boolean).map((l) => l.replace(/^  - /, ''));
    expect(runcmd[0]).toBe('set -e');
    const fetched = runcmd.findIndex((c) => c.startsWith('curl -fsSL') && c.includes("'{3}'"));
    const checked = runcmd.findIndex((c) => c === "echo '{4}  /tmp/besu.tar.gz' | sha256sum -c -");
    const unpacked = runcmd.findIndex((c) => c.includes('tar -xzf /tmp/besu.tar.gz'));
    expect(fetched).toBeGreaterThan(0);
    expect(checked).toBe(fetched + 1);
    expect(unpacked).toBe(checked + 1);
    // The client comes only from the checked archive: no PPA, no package of it.
    expect(cloudInit).not.toMatch(/add-apt-repository|ppa:|apt-get install[^\n]*(besu|ethereum|geth)/);
    expect(runcmd.at(-1)).toBe('systemctl enable --now besu.service');
    return { execStart, runcmd };
}

describe.each(parameterFiles)('parameter file %s', (file) => {
    let params: Obj;
    let template: Obj;
    beforeAll(() => {
        params = load(file);
        template = load(file.replace(/\.parameters\.json$/, '.json'));
    });

    it('sets only parameters its template declares, with the declared types, and every required one', () => {
        expect(params.$schema).toBe(PARAMETERS_SCHEMA);
        const declared = template.parameters as Record<string, Obj>;
        const typeOf = (v: unknown) => (Array.isArray(v) ? 'array' : typeof v === 'number' ? 'int' : typeof v === 'boolean' ? 'bool' : typeof v === 'object' ? 'object' : 'string');
        for (const [name, entry] of Object.entries<Obj>(params.parameters)) {
            expect(declared[name]).toBeDefined();
            if ('value' in entry) expect(typeOf(entry.value)).toBe(String(declared[name].type).toLowerCase().replace(/^secure/, ''));
        }
        const required = Object.entries(declared).filter(([, d]) => !('defaultValue' in d)).map(([n]) => n);
        expect(Object.keys(params.parameters)).toEqual(expect.arrayContaining(required));
    });

    it('carries no secrets', () => {
        for (const [name, entry] of Object.entries<Obj>(params.parameters)) {
            if (SECRET_NAME.test(name) && !NOT_SECRET.has(name)) expect('value' in entry).toBe(false);
        }
        expect(literalSecrets(params)).toEqual([]);
    });
});

describe('the checkers themselves', () => {
    const bad: Obj = {
        $schema: TEMPLATE_SCHEMA,
        contentVersion: '1.0.0.0',
        parameters: { dbPassword: { type: 'string', defaultValue: 'hunter2' } },
        variables: {},
        resources: [
            {
                type: 'Microsoft.Network/networkSecurityGroups',
                apiVersion: '2023-11-01',
                name: "[parameters('nope')]",
                properties: {
                    securityRules: [
                        { name: 'OpenRpc', properties: { priority: 100, direction: 'Inbound', access: 'Allow', protocol: 'Tcp', sourceAddressPrefix: 'Internet', sourcePortRange: '*', destinationAddressPrefix: '*', destinationPortRange: '8000-9000' } },
                    ],
                },
                resources: [{ type: 'securityRules', apiVersion: 'latest', name: 'x', properties: { direction: 'Inbound', access: 'Allow', sourceAddressPrefixes: ['10.0.0.0/8', '0.0.0.0/0'], destinationPortRanges: ['22', '8545'] } }],
            },
        ],
    };

    it('report an Internet→8545 allow rule, an undeclared parameter, a bad apiVersion and a secret default', () => {
        const problems = templateProblems(bad);
        expect(problems).toContain("$.resources[0].name: parameters('nope') is not declared");
        expect(problems).toContain('security rule OpenRpc: allows 8545 from anywhere');
        expect(problems).toContain('security rule x: allows 8545 from anywhere');
        expect(problems.some((p) => p.includes('apiVersion "latest"'))).toBe(true);
        expect(problems).toContain('parameter dbPassword looks secret and has a defaultValue');
        expect(problems).toContain('parameter dbPassword looks secret and is string, not securestring/secureObject');
    });

    it('resolve rules combined from variables, and leave narrow or other-port rules alone', () => {
        const t: Obj = {
            parameters: { src: { type: 'string', defaultValue: '*' } },
            variables: {
                a: [{ name: 'fromParamDefault', properties: { direction: 'Inbound', access: 'Allow', sourceAddressPrefix: "[parameters('src')]", destinationPortRange: '*' } }],
                b: [{ name: 'narrow', properties: { direction: 'Inbound', access: 'Allow', sourceAddressPrefix: '10.1.0.0/24', destinationPortRange: '8545' } }],
                c: [{ name: 'otherPort', properties: { direction: 'Inbound', access: 'Allow', sourceAddressPrefix: '*', destinationPortRange: '443' } }],
                d: [{ name: 'deny', properties: { direction: 'Inbound', access: 'Deny', sourceAddressPrefix: '*', destinationPortRange: '*' } }],
            },
            resources: [{ type: 'Microsoft.Network/networkSecurityGroups', apiVersion: '2023-11-01', name: 'n', properties: { securityRules: "[concat(variables('a'), variables('b'), variables('c'), variables('d'))]" } }],
        };
        expect(securityRules(t).map((r) => r.name)).toEqual(['fromParamDefault', 'narrow', 'otherPort', 'deny']);
        expect(openRpcRules(t)).toEqual(['security rule fromParamDefault: allows 8545 from anywhere']);
    });

    it('find malformed expressions and undeclared variables', () => {
        const t: Obj = { parameters: {}, variables: { ok: 1 }, resources: [{ type: 'A/b', apiVersion: '2024-01-01', name: "[concat(variables('ok'), variables('missing')]" }] };
        expect(expressionSyntax(t)).toEqual(['$.resources[0].name: 1 unclosed bracket(s)']);
        expect(undeclaredReferences(t)).toEqual(["$.resources[0].name: variables('missing') is not declared"]);
        expect(literalSecrets({ v: 'DefaultEndpointsProtocol=https;AccountName=a;AccountKey=abc' })).toEqual(['$.v: a literal secret']);
    });
});
