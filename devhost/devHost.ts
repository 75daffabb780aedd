import { BlobServiceClient } from '@azure/storage-blob';
import { unzipSync } from 'fflate';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { writeFileAtomic } from './files';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Logger } from 'pino';
import { readAppFolder } from './appFolder';
import { HUB_SETTING, taskHubName } from './durable/hubName';
import { DevConsole } from './console';
import { LocalIdentity } from './services/identity';
import { LocalKeyVault, localVaultName, VAULT_NAME_RE } from './services/keyVault';
import { ServiceBusAdminServer } from './servicebus/admin';
import { EntitiesConfig, LocalServiceBus } from './servicebus/broker';
import { devCertificate, type DevCertificate } from './services/devCertificate';
import { CosmosIdentityFront } from './services/cosmosFront';
import { resolveEntities } from './servicebus/entities';
import playgroundEntities from './servicebus/playground.entities.json';
import { MailSink } from './services/mailSink';
import { loadOrCreateSecret } from './services/storageProcess';
import { LocalNodes } from './services/localNodes';
import { DEFAULT_STORAGE_PORTS, LocalStorage, StoragePorts } from './services/storage';
import { currentPackage } from './releasePackage';
import { registerDevRoutes, type MemberAppRequest, type MemberApps, type VaultFaults } from './devRoutes';
import { loadProfile, type DevhostProfile, type LocalDataGrant, type LocalWorld } from './profile';
import { SERVICE_BUS_AUDIENCES, type BusAccessPolicy, type BusGrant } from './servicebus/access';
import { StateLock } from './stateLock';
import type { AppWorkerData, AppWorkerMessage } from './worker/appWorker';
import type { AppCounts, CallCount } from './worker/counts';

export interface AppInstanceConfig {
    /** Unique within the devhost; also the instance's name in logs and in `/dev/services`. */
    name: string;
    folder: string;
    /** Port to listen on; 0 picks a free one; default: the next port from `basePort`. */
    port?: number;
    /** Settings that override the folder's local.settings.json `Values`. */
    settings?: Record<string, string>;
    /** Its vault's name (a member's, as the app derived it); default: from the instance name. */
    vaultName?: string;
    /** The release package `folder` was unpacked from (shown with the running app). */
    package?: { container: string; blob: string; sha256: string };
    /** Where its local.settings.json is read, when the code runs from elsewhere (a member run from the release package keeps the source folder's local settings, as its template would give it app settings). */
    settingsFolder?: string;
}

export interface DevHostOptions {
    apps: AppInstanceConfig[];
    basePort?: number;
    consolePort?: number;
    stateDir?: string;
    /** Azurite's ports (0: any free port); `false` runs without local storage. */
    storage?: StoragePorts | false;
    /** Port of the identity issuer (0: any free port). */
    identityPort?: number;
    /** Port of the SMTP sink (0: any free port). */
    smtpPort?: number;
    /** The Service Bus broker: its port and the entities file (default: the first app's infra/servicebus.entities.json). */
    serviceBus?: { port: number; adminPort?: number; entitiesFile?: string } | false;
    /** Settings for every member instance started at run time (`--member-set`), under the request's own. */
    memberSettings?: Record<string, string>;
    /** The app's devhost profile module (default: the one the first app's package.json names, if any). */
    profile?: string;
    /**
     * Members run from the release package (default: when the first app folder has a `.funcignore` and a
     * `package-lock.json`, and storage runs): the devhost makes it (devhost/releasePackage.ts), puts it in
     * Azurite (`releases/flexchange.zip`, the core's FLEXCHANGE_RELEASE_PACKAGE) and runs each member from the
     * copy the core placed in the member's deployment container.
     */
    releasePackage?: boolean;
    logger: Logger;
}

export interface RunningApp {
    name: string;
    role?: string;
    orgId?: string;
    /** What the app's profile had done for it, shown with it (e.g. the core's operator account). */
    notes?: Record<string, string>;
    url: string;
    port: number;
    functions: { name: string; trigger: string; detail: string }[];
    /** The release package it runs from (a member deployment), as placed in its deployment container. */
    package?: { container: string; blob: string; sha256: string };
}

interface AppSlot {
    config: AppInstanceConfig;
    worker: Worker;
    info: RunningApp;
    vault?: LocalKeyVault;
    /** Its task hub (lower case: the storage names it becomes are case-insensitive). */
    hub: string;
    stopped?: Promise<void>;
}

/** An instance's own vault's roles when the profile has no table. */
const OWN_VAULT_OFFICER: readonly LocalDataGrant[] = [
    { role: 'Key Vault Secrets Officer', scope: 'own-vault' },
    { role: 'Key Vault Crypto Officer', scope: 'own-vault' },
];

const SHUTDOWN_GRACE_MS = 60_000;

/**
 * The local Functions host: one app instance per worker thread (own port, own
 * settings, own module registry), the console on :7070, and a graceful stop.
 */
export class DevHost {
    readonly stateDir: string;
    readonly #opts: DevHostOptions;
    readonly #log: Logger;
    readonly #slots = new Map<string, AppSlot>();
    readonly #lock: StateLock;
    #console?: DevConsole;
    #storage?: LocalStorage;
    /** Members' own ledger nodes (relays in front of the shared chain). */
    readonly #nodes: LocalNodes;
    #bus?: LocalServiceBus;
    #busAdmin?: ServiceBusAdminServer;
    /** The local CA's certificate and the server's (the broker's TLS, the Cosmos front): made once per state folder. */
    #tls?: DevCertificate;
    /** The document database for instances with Entra ID: https, tokens only, each its own database (cosmosFront.ts). */
    #cosmosFront?: CosmosIdentityFront;
    /** The data roles of each instance's managed identity, by object id (the profile's dataRoles). */
    readonly #dataGrants = new Map<string, { app: string; grants: readonly LocalDataGrant[]; databases: readonly string[] }>();
    identity?: LocalIdentity;
    mail?: MailSink;
    #nextPort: number;
    #stopping?: Promise<void>;
    #profile: DevhostProfile = {};

    constructor(opts: DevHostOptions) {
        this.#opts = opts;
        this.#log = opts.logger;
        this.#nodes = new LocalNodes(() => this.#storage?.info?.ledger.url, this.#log.child({ component: 'nodes' }));
        this.stateDir = path.resolve(opts.stateDir ?? '.flexchange');
        this.#lock = new StateLock(this.stateDir);
        this.#nextPort = opts.basePort ?? 7071;
    }

    get apps(): RunningApp[] {
        return [...this.#slots.values()].map((s) => s.info);
    }

    get services(): Record<string, string> {
        return this.#console?.services ?? {};
    }

    get consoleUrl(): string | undefined {
        return this.#console?.url;
    }

    async start(): Promise<void> {
        this.#lock.acquire();
        try {
            const profile = this.#opts.profile ?? (this.#opts.apps[0] ? readAppFolder(this.#opts.apps[0].folder).profile : undefined);
            if (profile) {
                this.#profile = loadProfile(profile);
                this.#log.info({ profile }, 'app profile loaded');
            }
            this.#console = new DevConsole({ host: this, logger: this.#log });
            await this.#console.listen(this.#opts.consolePort ?? 7070);
            this.identity = new LocalIdentity(this.stateDir, this.#log, this.#profile.appRegistration);
            await this.identity.start(this.#opts.identityPort ?? 7080);
            this.mail = new MailSink(this.stateDir, this.#log);
            await this.mail.start(this.#opts.smtpPort ?? 2525);
            Object.assign(this.#console.services, { issuer: this.identity.url, smtp: this.mail.url, mail: `${this.#console.url}/dev/mail` });
            const enterPrincipal = this.#profile.enterPrincipal?.bind(this.#profile);
            registerDevRoutes(this.#console, { identity: this.identity, mail: this.mail, enterPrincipal: enterPrincipal && ((p) => enterPrincipal(p, this.#world())), memberApps: this.#memberApps(), nodes: this.#nodes, vaults: this.#vaultFaults(), counts: () => this.counts() });
            await this.#startBus();
            if (this.#opts.storage !== false) {
                this.#storage = new LocalStorage(this.stateDir, this.#log);
                const info = await this.#storage.start(this.#opts.storage ?? DEFAULT_STORAGE_PORTS, { ledger: this.#profile.ledger });
                Object.assign(this.#console.services, { blob: info.blob, queue: info.queue, table: info.table, cosmos: info.cosmos.endpoint, ledger: info.ledger.url });
                await this.#startCosmosFront(info.cosmos.endpoint);
                await this.#publishRelease();
            }
            for (const app of this.#opts.apps) await this.addApp(app);
            // Member deployments made at run time come back with the devhost.
            for (const member of this.#readMemberApps()) {
                if (!this.#slots.has(member.name)) await this.#startMember(member.name, member);
            }
            this.#writeRuntimeFile();
            const access = this.accessStatement();
            if (access) this.#log.info({ event: 'devhost.identity', ...access }, `managed identities checked by: ${access.checked.join(', ')}; not checked (keys): ${access.keyed.join('; ')}`);
            this.#log.info({ event: 'devhost.ready', console: this.consoleUrl, apps: this.apps.map(({ functions: _f, ...a }) => a) }, 'devhost ready');
        } catch (err) {
            await this.stop();
            throw err;
        }
    }

    /** Starts one more app instance (members are added this way at run time). */
    async addApp(config: AppInstanceConfig): Promise<RunningApp> {
        if (this.#slots.has(config.name)) throw new Error(`An app instance named "${config.name}" already runs`);
        const folder = readAppFolder(config.folder);
        const port = config.port ?? folder.localHttpPort ?? this.#takePort();
        const env: Record<string, string> = {};
        for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v;
        // Precedence: the environment < the folder's local.settings.json < the addresses of the devhost's
        // own services (so a sample configuration still reaches the local world) < --set for this instance.
        Object.assign(env, config.settingsFolder ? readAppFolder(config.settingsFolder).settings : folder.settings);
        const storage = this.#storage?.info;
        // With the deployment's table, instances use their managed identity where a local server can check it, as in Azure.
        const byIdentity = Boolean(this.identity && this.#profile.dataRoles);
        if (storage) {
            env.AzureWebJobsStorage = storage.connectionString;
            // An instance given its own COSMOS_ENDPOINT (e.g. a proxy to the server) keeps the key that endpoint takes.
            if (byIdentity && this.#cosmosFront && !config.settings?.COSMOS_ENDPOINT) {
                env.COSMOS_ENDPOINT = this.#cosmosFront.url;
                delete env.COSMOS_KEY;
            } else {
                env.COSMOS_ENDPOINT = storage.cosmos.endpoint;
                env.COSMOS_KEY = storage.cosmos.key;
            }
            env.FLEXCHANGE_LEDGER_RPC_URLS = storage.ledger.url;
            env.FLEXCHANGE_CHAIN_ID = String(storage.ledger.chainId);
            // The members' local nodes are relays on loopback: the devhost's node network.
            env.FLEXCHANGE_NODE_NETWORK_RANGES = '127.0.0.0/8,::1/128';
        }
        if (this.identity) {
            env.FLEXCHANGE_AUTH_ISSUER = this.identity.url;
            env.FLEXCHANGE_AUTH_JWKS_URI = this.identity.jwksUri;
            env.FLEXCHANGE_AUTH_AUDIENCE ??= this.identity.audience;
        }
        if (byIdentity && this.#tls) env.NODE_EXTRA_CA_CERTS = this.#tls.caFile;
        if (this.#bus && byIdentity) {
            // As in Azure: the namespace, reached with the instance's managed identity over TLS (amqps and https),
            // its rights those of the deployment's table. No connection string: a key would have every right.
            // A host name, not an IP: TLS sends it as the server name (SNI), which an IP may not be (RFC 6066).
            const namespace = `localhost:${this.#bus.port}`;
            env.AzureWebJobsServiceBus__fullyQualifiedNamespace = namespace;
            env.FLEXCHANGE_SERVICEBUS_NAMESPACE = namespace;
            for (const name of ['AzureWebJobsServiceBus', 'FLEXCHANGE_SERVICEBUS_CONNECTION', 'FLEXCHANGE_SERVICEBUS_ADMIN_URL']) delete env[name];
        } else if (this.#bus) {
            env.AzureWebJobsServiceBus = this.#bus.connectionString;
            env.FLEXCHANGE_SERVICEBUS_CONNECTION = this.#bus.connectionString;
            if (this.#busAdmin) env.FLEXCHANGE_SERVICEBUS_ADMIN_URL = this.#busAdmin.url;
        }
        if (this.mail) {
            env.FLEXCHANGE_SMTP_URL = this.mail.url;
            delete env.FLEXCHANGE_ACS_CONNECTION_STRING;
        }
        if (this.#console?.url) env.FLEXCHANGE_DEVHOST_CONSOLE_URL = this.#console.url;
        // A member instance (also one named on the command line) gets what the profile derives for members
        // (e.g. a task hub of its own), under the instance's own settings.
        const asConfigured = { ...env, ...(config.settings ?? {}) };
        if (asConfigured.FLEXCHANGE_ROLE === 'member' && asConfigured.FLEXCHANGE_ORG_ID) Object.assign(env, this.#profile.memberSettings?.({ name: config.name, orgId: asConfigured.FLEXCHANGE_ORG_ID }) ?? {});
        Object.assign(env, config.settings ?? {});
        // A member belongs to the core running here (it asks the core who its callers are, and registers its accounts there).
        const core = [...this.#slots.values()].find((s) => (s.info.role ?? 'core') === 'core');
        if (env.FLEXCHANGE_ROLE === 'member' && !env.FLEXCHANGE_CORE_URL && core) env.FLEXCHANGE_CORE_URL = core.info.url;
        // The core places this package in each member's deployment container (members run from it).
        if (this.#release && env.FLEXCHANGE_ROLE !== 'member') env.FLEXCHANGE_RELEASE_PACKAGE ??= `${this.#release.container}/${this.#release.blob}`;
        // Each app instance has a vault of its own: a member's keys never share a vault with another's.
        let vault: LocalKeyVault | undefined;
        if (this.identity && !config.settings?.FLEXCHANGE_KEYVAULT_URL) {
            env.FLEXCHANGE_CLIENT_ID = config.settings?.FLEXCHANGE_CLIENT_ID ?? `flexchange-${config.name}`;
            // What its identity may use: the deployment's table, else officer of its own vault.
            const owner = this.identity.principalOf(env.FLEXCHANGE_CLIENT_ID);
            const grants = this.#profile.dataRoles?.({ name: config.name, role: env.FLEXCHANGE_ROLE || undefined, orgId: env.FLEXCHANGE_ORG_ID || undefined }) ?? OWN_VAULT_OFFICER;
            const databases = grants.some((g) => g.scope === 'own-database') ? [env.COSMOS_DATABASE || 'flexchange'] : [];
            this.#dataGrants.set(owner, { app: config.name, grants, databases });
            vault = await this.#startVault(config.name, config.vaultName, owner);
            env.FLEXCHANGE_KEYVAULT_URL = vault.url;
            // Its own managed identity, as App Service gives one (IDENTITY_ENDPOINT + IDENTITY_HEADER): the app's
            // DefaultAzureCredential finds it, as in Azure. Credentials of the developer's shell stay out.
            env.FLEXCHANGE_CREDENTIAL = config.settings?.FLEXCHANGE_CREDENTIAL ?? 'managed-identity';
            if (this.#console?.url) {
                env.IDENTITY_ENDPOINT = `${this.#console.url}/dev/msi/token`;
                env.IDENTITY_HEADER = this.identity.managedIdentity(env.FLEXCHANGE_CLIENT_ID);
            }
            for (const name of ['AZURE_CLIENT_ID', 'AZURE_CLIENT_SECRET', 'AZURE_TENANT_ID', 'AZURE_CLIENT_CERTIFICATE_PATH', 'AZURE_FEDERATED_TOKEN_FILE', 'AZURE_USERNAME', 'AZURE_PASSWORD', 'MSI_ENDPOINT', 'MSI_SECRET', 'IDENTITY_SERVER_THUMBPRINT', 'IMDS_ENDPOINT']) delete env[name];
        }
        Object.assign(env, {
            FUNCTIONS_WORKER_RUNTIME: 'node',
            AzureWebJobsScriptRoot: folder.dir,
            FLEXCHANGE_DEVHOST_APP: config.name,
        });
        // Two instances on one task hub would take each other's work items and histories.
        const hub = taskHubName(folder.hostJson, env, config.name).toLowerCase();
        const sharing = [...this.#slots.values()].find((s) => s.hub === hub);
        if (sharing) {
            await vault?.stop();
            throw new Error(`App "${config.name}" would share the task hub "${hub}" with "${sharing.config.name}": give it a hub of its own (host.json extensions.durableTask.hubName, or ${HUB_SETTING})`);
        }
        const data: AppWorkerData = { name: config.name, folder: folder.dir, port, stateDir: this.stateDir };
        const ext = path.extname(__filename);
        const worker = new Worker(path.join(__dirname, 'worker', `appWorker${ext}`), { workerData: data, env, stdout: false, stderr: false });

        const ready = await new Promise<AppWorkerMessage>((resolve) => {
            const onMessage = (m: AppWorkerMessage) => {
                if (m.type === 'ready' || m.type === 'failed') {
                    worker.off('message', onMessage);
                    resolve(m);
                }
            };
            worker.on('message', onMessage);
            worker.once('error', (err) => resolve({ type: 'failed', message: err.message }));
            worker.once('exit', (code) => resolve({ type: 'failed', message: `worker exited with code ${code}` }));
        });
        if (ready.type !== 'ready') {
            await worker.terminate();
            await vault?.stop();
            throw new Error(`App "${config.name}" (${folder.dir}) failed to start: ${ready.type === 'failed' ? ready.message : ready.type}`);
        }
        const actualPort = ready.port;
        const info: RunningApp = {
            name: config.name,
            role: env.FLEXCHANGE_ROLE || undefined,
            orgId: env.FLEXCHANGE_ORG_ID || undefined,
            url: `http://localhost:${actualPort}${folder.routePrefix ? `/${folder.routePrefix}` : ''}`,
            port: actualPort,
            functions: ready.functions,
            ...(config.package ? { package: config.package } : {}),
        };
        const notes = await this.#profile.instanceStarted?.({ name: config.name, role: info.role, orgId: info.orgId, url: info.url, settings: env, vaultUrl: vault?.url }, this.#world());
        if (notes) info.notes = notes;
        const slot: AppSlot = { config, worker, info, vault, hub };
        if (vault) this.services[`vault:${config.name}`] = vault.url;
        this.#slots.set(config.name, slot);
        worker.on('error', (err) => this.#log.error({ app: config.name, err: { message: err.message, stack: err.stack } }, 'app worker crashed'));
        worker.on('exit', (code) => {
            if (!this.#stopping) {
                this.#log.error({ app: config.name, code }, 'app worker exited unexpectedly; restarting it');
                this.#slots.delete(config.name);
                void vault?.stop();
                setTimeout(() => {
                    if (this.#stopping) return;
                    this.addApp({ ...config, port: actualPort }).then(
                        () => this.#writeRuntimeFile(),
                        (err: Error) => this.#log.error({ app: config.name, err: { message: err.message } }, 'restart failed'),
                    );
                }, 1000);
            }
        });
        return info;
    }

    /**
     * What each app instance has done since it started (`GET /dev/counts`): the requests it served,
     * its Durable work and the HTTP requests it made, by destination, each named after the devhost's
     * service, app or node listening there (`ledger`, `cosmos/<container>`, `app:<name>`, `node:<id>`, ...).
     */
    async counts(): Promise<{ apps: Record<string, AppCounts> }> {
        const names = new Map<string, string>();
        const port = (url: string) => {
            const u = new URL(url);
            return u.port || (u.protocol === 'https:' ? '443' : '80');
        };
        // A service's address is its first word (some say more after it, e.g. which CA to trust).
        for (const [name, value] of Object.entries(this.services)) {
            const url = value.split(' ')[0]!;
            if (/^(https?|amqp):/.test(url) && URL.canParse(url)) names.set(port(url), name);
        }
        for (const node of this.#nodes.list()) names.set(port(node.rpcUrl), `node:${node.nodeId}`);
        for (const slot of this.#slots.values()) names.set(String(slot.info.port), `app:${slot.config.name}`);
        // The console serves the mail viewer and the instances' managed identity tokens (IDENTITY_ENDPOINT) too.
        if (this.#console?.url) names.set(port(this.#console.url), 'console');
        const apps: Record<string, AppCounts> = {};
        await Promise.all(
            [...this.#slots.values()].map(async ({ worker, config }) => {
                const counts = await new Promise<AppCounts | undefined>((resolve) => {
                    const timer = setTimeout(() => done(undefined), 2000);
                    const onMessage = (m: AppWorkerMessage) => m.type === 'counts' && done(m.counts);
                    const done = (c: AppCounts | undefined) => {
                        clearTimeout(timer);
                        worker.off('message', onMessage);
                        resolve(c);
                    };
                    worker.on('message', onMessage);
                    worker.postMessage({ type: 'counts' });
                });
                if (!counts) return;
                const calls: Record<string, CallCount> = {};
                for (const [destination, c] of Object.entries(counts.calls)) {
                    const [where, container] = destination.split('/');
                    const [host, p] = [where!.slice(0, where!.lastIndexOf(':')), where!.slice(where!.lastIndexOf(':') + 1)];
                    const local = /^(localhost|127\.0\.0\.1|\[::1\])$/.test(host);
                    const name = `${(local && names.get(p)) || where}${container ? `/${container}` : ''}`;
                    const sum = (calls[name] ??= { reads: 0, writes: 0 });
                    sum.reads += c.reads;
                    sum.writes += c.writes;
                }
                apps[config.name] = { ...counts, calls };
            }),
        );
        return { apps };
    }

    stop(): Promise<void> {
        this.#stopping ??= this.#stop();
        return this.#stopping;
    }

    async #stop(): Promise<void> {
        await this.#console?.close();
        await Promise.all([...this.#slots.values()].map((slot) => this.#stopApp(slot)));
        await this.#nodes.stopAll();
        await this.#cosmosFront?.stop();
        await this.#storage?.stop();
        await this.#busAdmin?.stop();
        await this.#bus?.stop();
        await this.mail?.stop();
        await this.identity?.stop();
        rmSync(path.join(this.stateDir, 'devhost.json'), { force: true });
        this.#lock.release();
        this.#log.info({ event: 'devhost.stopped' }, 'devhost stopped');
    }

    async #stopApp(slot: AppSlot): Promise<void> {
        const { worker, config } = slot;
        const stopped = new Promise<void>((resolve) => {
            worker.on('message', (m: AppWorkerMessage) => m.type === 'stopped' && resolve());
            worker.once('exit', () => resolve());
        });
        worker.postMessage({ type: 'shutdown' });
        let timer: NodeJS.Timeout | undefined;
        const timedOut = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), SHUTDOWN_GRACE_MS)));
        const outcome = await Promise.race([stopped, timedOut]);
        clearTimeout(timer);
        if (outcome === 'timeout') this.#log.warn({ app: config.name }, 'app did not stop in time; terminating it');
        await worker.terminate();
        await slot.vault?.stop();
    }

    /** The Service Bus broker, with the entities the ARM templates create (read from one file). */
    async #startBus(): Promise<void> {
        const opt = this.#opts.serviceBus;
        if (opt === false) return;
        const file = opt?.entitiesFile ?? (this.#opts.apps[0] ? path.join(path.resolve(this.#opts.apps[0].folder), 'infra', 'servicebus.entities.json') : undefined);
        if (!file || !existsSync(file)) return;
        let entities: EntitiesConfig;
        try {
            entities = withPlayground(JSON.parse(readFileSync(file, 'utf8')) as EntitiesConfig);
        } catch (err) {
            throw new Error(`Cannot read the Service Bus entities file ${file}: ${(err as Error).message}`);
        }
        const access = this.#busAccess();
        this.#bus = new LocalServiceBus({ dir: path.join(this.stateDir, 'servicebus'), entities, logger: this.#log.child({ component: 'servicebus' }), access });
        await this.#bus.start(opt?.port ?? 5672);
        this.#console!.services.bus = `amqp://127.0.0.1:${this.#bus.port}`;
        // Subscriptions and rules at run time, over the administration client's HTTP/ATOM API.
        this.#busAdmin = new ServiceBusAdminServer(this.#bus, this.#log.child({ component: 'servicebus-admin' }), access);
        await this.#busAdmin.start(opt?.adminPort ?? 5300);
        // TLS on the broker's port: amqps (clients built from a namespace and a credential) and the administration
        // API, where the SDK goes from a connection string or a namespace.
        const tls = this.#certificate();
        const admin = this.#busAdmin;
        this.#bus.serveTls(tls, (stream) => admin.accept(stream));
        this.#console!.services.busAdmin = this.#busAdmin.url;
        this.#console!.services.busHttps = `https://127.0.0.1:${this.#bus.port} (trust ${path.relative(process.cwd(), tls.caFile) || tls.caFile})`;
        this.#console!.services.busConnection = this.#bus.connectionString;
    }

    /** The local CA and server certificate (127.0.0.1, localhost); kept where the broker's first use put them. */
    #certificate(): DevCertificate {
        // Node reads NODE_EXTRA_CA_CERTS once per process: app workers apply theirs to their own thread (appWorker.ts).
        this.#tls ??= devCertificate(path.join(this.stateDir, 'servicebus', 'tls'));
        return this.#tls;
    }

    /** The Cosmos front for instances with Entra ID, when the profile has the table (cosmosFront.ts). */
    async #startCosmosFront(target: string): Promise<void> {
        const identity = this.identity;
        if (!identity || !this.#profile.dataRoles) return;
        const front = new CosmosIdentityFront({
            target,
            tls: this.#certificate(),
            verify: async (token, audiences) => {
                const claims = await identity.claimsOf(token, audiences);
                return typeof claims?.oid === 'string' ? claims.oid : undefined;
            },
            databasesOf: (oid) => this.#dataGrants.get(oid)?.databases ?? [],
            logger: this.#log.child({ component: 'cosmos-front' }),
        });
        await front.start(0);
        this.#cosmosFront = front;
        this.#console!.services.cosmosEntra = front.url;
    }

    /**
     * Which local services check an instance's managed-identity token and its roles, and which cannot (their
     * local servers take keys only), said at start-up: an access that works here against the latter proves
     * nothing about Azure RBAC.
     */
    accessStatement(): { checked: string[]; keyed: string[] } | undefined {
        if (!this.identity) return undefined;
        const checked = ['Key Vault (each instance\'s own vault, roles from the profile)'];
        if (this.#bus) checked.push(this.#profile.dataRoles ? 'Service Bus (amqps and its administration API, roles from the profile)' : 'Service Bus (tokens only: no profile table, instances use the connection string)');
        if (this.#cosmosFront) checked.push(`Cosmos DB (${this.#cosmosFront.url}: tokens, and each instance's own database only)`);
        const keyed: string[] = [];
        if (this.#storage) keyed.push('storage (Azurite checks no Entra ID token signature and speaks http here: account key)');
        if (this.#storage && !this.#cosmosFront) keyed.push('Cosmos DB (the local server: account key)');
        if (this.mail) keyed.push('mail (SMTP sink; Communication Services with the identity in Azure)');
        return { checked, keyed };
    }

    /**
     * How the broker checks Entra ID tokens: the local issuer's, for Service Bus; a principal's roles are those the
     * table gives the instance it belongs to (none for any other principal). SAS keys keep every right (access.ts).
     */
    #busAccess(): BusAccessPolicy | undefined {
        const identity = this.identity;
        if (!identity) return undefined;
        return {
            principal: async (token) => {
                const claims = await identity.claimsOf(token, SERVICE_BUS_AUDIENCES);
                return claims && typeof claims.oid === 'string' && typeof claims.exp === 'number' ? { oid: claims.oid, expiresAt: claims.exp * 1000 } : undefined;
            },
            grants: (oid) => (this.#dataGrants.get(oid)?.grants ?? []).flatMap((g): BusGrant[] => (g.scope === 'service-bus' ? [{ role: g.role, entity: g.entity }] : [])),
        };
    }

    /** The devhost's services, as the app's profile sees them. */
    #world(): LocalWorld {
        const identity = this.identity;
        return {
            storage: this.#storage?.info,
            identity: identity && { url: identity.url, registerApp: (clientId, roles, orgId) => identity.registerApp(clientId, roles, orgId) },
        };
    }

    /** An app's vault: only its owner's identity gets in, with the vault roles the table gives it (Azure RBAC). */
    async #startVault(appName: string, requested: string | undefined, owner: string): Promise<LocalKeyVault> {
        const identity = this.identity!;
        const masterKey = Buffer.from(loadOrCreateSecret(this.stateDir, 'vault-master-key'), 'base64').subarray(0, 32);
        const dir = path.join(this.stateDir, 'vaults', appName);
        // A vault that already has state keeps the name it was created with (its keys are in `<name>.keyvault`),
        // whatever naming rule made that name.
        const existing = existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.keyvault')).map((f) => f.slice(0, -'.keyvault'.length)).filter((n) => VAULT_NAME_RE.test(n)) : [];
        if (existing.length > 1) throw new Error(`The vault folder ${dir} holds the state of several vaults (${existing.join(', ')}); keep one`);
        const name = existing[0] ?? requested ?? localVaultName(appName);
        if (existing[0] && requested && existing[0] !== requested) this.#log.info({ app: appName, vault: existing[0], requested }, 'vault keeps the name its state was created with');
        const vault = new LocalKeyVault({
            name,
            dir,
            masterKey,
            tenantId: identity.tenantId,
            verifyToken: async (bearer) => {
                const claims = await identity.claimsOf(bearer, 'https://vault.azure.net');
                return claims && typeof claims.oid === 'string' ? { oid: claims.oid, appId: typeof claims.azp === 'string' ? claims.azp : undefined } : undefined;
            },
            rolesOf: (caller) => (caller.oid === owner ? (this.#dataGrants.get(owner)?.grants ?? []).flatMap((g) => (g.scope === 'own-vault' ? [g.role] : [])) : []),
            logger: this.#log.child({ vault: appName }),
        });
        await vault.start(0);
        return vault;
    }

    readonly #memberStarts = new Map<string, Promise<RunningApp>>();
    /** The release package members run from (see #publishRelease). */
    #release?: { container: string; blob: string; sha256: string };

    /** Stops an app's vault (its URL stays the app's), and starts it again on the same port. */
    #vaultFaults(): VaultFaults {
        const vaultOf = (app: string) => {
            const slot = this.#slots.get(app);
            if (!slot?.vault) throw Object.assign(new Error(`No app instance "${app}" with a vault of its own`), { status: 404 });
            return slot;
        };
        return {
            stop: async (app) => {
                const slot = vaultOf(app);
                const url = this.services[`vault:${app}`]!;
                await slot.vault!.stop();
                this.#log.warn({ app, vault: url }, 'vault stopped (fault injection)');
                return url;
            },
            start: async (app) => {
                const slot = vaultOf(app);
                const url = this.services[`vault:${app}`]!;
                await slot.vault!.start(Number(new URL(url).port)).catch((err: Error) => {
                    if (!/already running/.test(err.message)) throw err;
                });
                this.#log.info({ app, vault: url }, 'vault started again');
                return url;
            },
        };
    }

    /** Member instances of the first app's folder, started on request (PUT /dev/apps/{name}) and kept in `<state>/member-apps.json`. */
    #memberApps(): MemberApps {
        return {
            ensure: async (name, request) => {
                const running = this.#slots.get(name);
                if (running) return { name, url: running.info.url, port: running.info.port, identity: this.#memberIdentity(name, request.orgId), created: false };
                let start = this.#memberStarts.get(name);
                const created = !start;
                if (!start) {
                    start = this.#startMember(name, request).finally(() => this.#memberStarts.delete(name));
                    this.#memberStarts.set(name, start);
                }
                const info = await start;
                const known = this.#readMemberApps().filter((a) => a.name !== name);
                writeFileAtomic(path.join(this.stateDir, 'member-apps.json'), JSON.stringify({ apps: [...known, { name, ...request }] }, null, 2), 0o600, true);
                this.#writeRuntimeFile();
                return { name, url: info.url, port: info.port, identity: this.#memberIdentity(name, request.orgId), created };
            },
            get: (name) => {
                const slot = this.#slots.get(name);
                return slot ? { name, url: slot.info.url, port: slot.info.port, identity: this.#memberIdentity(name, slot.info.orgId) } : undefined;
            },
        };
    }

    /**
     * A member instance's app identity: its client id (as `addApp` gives it) with the app roles
     * the profile names for members, as the member's managed identity gets them in Azure.
     */
    #memberIdentity(name: string, orgId?: string): { clientId: string; principalId: string } {
        return this.identity!.registerApp(`flexchange-${name}`, this.#profile.memberRoles ?? [], orgId);
    }

    async #startMember(name: string, request: MemberAppRequest): Promise<RunningApp> {
        const template = this.#opts.apps[0];
        if (!template) throw new Error('No app folder to start a member instance from');
        this.#memberIdentity(name, request.orgId);
        // The member's own ledger node (a relay in front of the shared chain); the app's profile says how the member uses it.
        const ledgerUrl = this.#storage?.info?.ledger.url;
        const node = ledgerUrl ? await this.#nodes.ensure(`${request.orgId}-node-0`) : undefined;
        const nodeSettings = this.#profile.memberSettings?.({ name, orgId: request.orgId, node: node && { nodeId: node.nodeId, rpcUrl: node.rpcUrl, enode: node.enode }, ledgerUrl }) ?? {};
        // From the release package the core placed in the member's deployment container, when it placed one.
        const release = request.package ? await this.#unpackRelease(request.package) : undefined;
        return this.addApp({
            name,
            folder: release?.dir ?? template.folder,
            package: release && request.package && { ...request.package, sha256: release.sha256 },
            settingsFolder: release ? template.folder : undefined,
            vaultName: request.names?.vault,
            settings: {
                ...nodeSettings,
                ...(this.#opts.memberSettings ?? {}),
                ...(request.settings ?? {}),
                FLEXCHANGE_ROLE: 'member',
                FLEXCHANGE_ORG_ID: request.orgId,
                // Its own database in the local Cosmos server, as its own account would be in Azure.
                COSMOS_DATABASE: request.names?.cosmosDatabase ?? `member-${request.orgId}`,
            },
        });
    }

    /**
     * The release package of the first app folder, made (or reused, devhost/releasePackage.ts) and put in
     * Azurite where the core finds it (FLEXCHANGE_RELEASE_PACKAGE), as the operator's deployment puts it in the
     * core's deployment container in Azure.
     */
    async #publishRelease(): Promise<void> {
        const folder = this.#opts.apps[0]?.folder;
        const storage = this.#storage?.info;
        const wanted = this.#opts.releasePackage ?? (folder !== undefined && existsSync(path.join(folder, '.funcignore')) && existsSync(path.join(folder, 'package-lock.json')));
        if (!wanted || !folder || !storage) return;
        const started = Date.now();
        const made = await currentPackage(path.resolve(folder));
        const container = BlobServiceClient.fromConnectionString(storage.connectionString).getContainerClient(RELEASE_CONTAINER);
        await container.createIfNotExists();
        const blob = container.getBlockBlobClient(RELEASE_BLOB);
        const existing = await blob.getProperties().catch(() => undefined);
        // One request each way (no parallel blocks): Azurite pipes parallel blocks into one socket's listeners.
        if (existing?.metadata?.sha256 !== made.sha256) await blob.uploadData(readFileSync(made.out), { metadata: { sha256: made.sha256 }, blobHTTPHeaders: { blobContentType: 'application/zip' } });
        this.#release = { container: RELEASE_CONTAINER, blob: RELEASE_BLOB, sha256: made.sha256 };
        this.#log.info({ package: path.relative(process.cwd(), made.out), sha256: made.sha256, built: made.built, ms: Date.now() - started }, 'release package ready for members');
    }

    /**
     * The release package in a member's deployment container, unpacked under `<state>/releases/<sha256>/` (once
     * per content: members of one release share it, read only).
     */
    async #unpackRelease(ref: { container: string; blob: string }): Promise<{ dir: string; sha256: string }> {
        const storage = this.#storage?.info;
        if (!storage) throw new Error('Members run from a release package only with local storage');
        const client = BlobServiceClient.fromConnectionString(storage.connectionString).getContainerClient(ref.container).getBlockBlobClient(ref.blob);
        let zipped: Buffer;
        try {
            const chunks: Buffer[] = [];
            for await (const chunk of (await client.download()).readableStreamBody!) chunks.push(chunk as Buffer);
            zipped = Buffer.concat(chunks);
        } catch (err) {
            throw new Error(`The release package ${ref.container}/${ref.blob} cannot be read: ${(err as Error).message}`);
        }
        const sha256 = createHash('sha256').update(zipped).digest('hex');
        const dir = path.join(this.stateDir, 'releases', sha256);
        if (existsSync(path.join(dir, 'package.json'))) return { dir, sha256 };
        const tmp = `${dir}.${process.pid}.tmp`;
        rmSync(tmp, { recursive: true, force: true });
        let files: Record<string, Uint8Array>;
        try {
            files = unzipSync(zipped);
        } catch (err) {
            throw new Error(`The release package ${ref.container}/${ref.blob} is not a zip: ${(err as Error).message}`);
        }
        for (const [name, data] of Object.entries(files)) {
            if (name.endsWith('/')) continue;
            const target = path.resolve(tmp, name);
            if (!target.startsWith(`${tmp}${path.sep}`)) throw new Error(`The release package ${ref.container}/${ref.blob} names a file outside its folder: ${name}`);
            mkdirSync(path.dirname(target), { recursive: true });
            writeFileSync(target, data);
        }
        rmSync(dir, { recursive: true, force: true });
        renameSync(tmp, dir);
        this.#log.info({ package: `${ref.container}/${ref.blob}`, sha256, files: Object.keys(files).length, dir }, 'release package unpacked');
        return { dir, sha256 };
    }

    /** Entries written before names came with the request have none: their vault keeps its name (its state file), the database stays `member-<orgId>`. */
    #readMemberApps(): ({ name: string } & MemberAppRequest)[] {
        try {
            const data = JSON.parse(readFileSync(path.join(this.stateDir, 'member-apps.json'), 'utf8')) as { apps?: ({ name: string } & MemberAppRequest)[] };
            return data.apps ?? [];
        } catch {
            return [];
        }
    }

    #takePort(): number {
        if (this.#opts.basePort === 0) return 0; // every instance on a free port of its own
        // Never a port the devhost's own services listen on (the identity issuer's 7080 comes after nine members).
        const used = new Set([...this.#slots.values()].map((s) => s.info.port));
        for (const url of [this.consoleUrl, ...Object.values(this.services)]) {
            try {
                const port = url ? Number(new URL(url).port) : 0;
                if (port) used.add(port);
            } catch {
                // not a URL: nothing listens there
            }
        }
        while (used.has(this.#nextPort)) this.#nextPort++;
        return this.#nextPort++;
    }

    /** `<state>/devhost.json`: where everything listens, for tools and tests. */
    #writeRuntimeFile(): void {
        writeFileAtomic(path.join(this.stateDir, 'devhost.json'), JSON.stringify({ pid: process.pid, console: this.consoleUrl, apps: this.apps }, null, 2));
    }
}

/** The app's entities plus the devhost's playground queues (devhost/servicebus/playground.entities.json); the app's names win. */
function withPlayground(entities: EntitiesConfig): EntitiesConfig {
    resolveEntities(playgroundEntities);
    const playground = playgroundEntities as EntitiesConfig;
    const taken = new Set([...(entities.queues ?? []), ...(entities.topics ?? [])].map((e) => e.name.toLowerCase()));
    return {
        queues: [...(entities.queues ?? []), ...playground.queues.filter((q) => !taken.has(q.name.toLowerCase()))],
        topics: [...(entities.topics ?? []), ...playground.topics.filter((t) => !taken.has(t.name.toLowerCase()))],
    };
}

/** Where the devhost puts the release package for the core (FLEXCHANGE_RELEASE_PACKAGE), in Azurite. */
const RELEASE_CONTAINER = 'releases';
const RELEASE_BLOB = 'flexchange.zip';
