import type { Logger } from 'pino';
import { AppFolder, readAppFolder, resolveSettingReferences } from '../appFolder';
import type { RpcInvocationResponse, RpcParameterBinding, RpcTypedData } from './coreTypes';
import { countInvocation } from './counts';
import type { AppContext, BindingExtension, ExtensionFactory, InvokeOptions, SystemRoute } from './extension';
import { FunctionRuntime, RegisteredFunction } from './functionRuntime';
import { HttpExtension } from './httpExtension';
import { TimerExtension } from './timerExtension';
import { DurableExtension } from '../durable/durableExtension';
import { ServiceBusExtension } from './serviceBusExtension';

export const builtinExtensions: ExtensionFactory[] = [
    (app) => new HttpExtension(app),
    (app) => new TimerExtension(app),
    (app) => new DurableExtension(app),
    (app) => new ServiceBusExtension(app),
];

export interface AppInstanceOptions {
    name: string;
    port: number;
    stateDir: string;
    logger: Logger;
    extensions?: ExtensionFactory[];
}

export interface FunctionSummary {
    name: string;
    trigger: string;
    detail: string;
}

/**
 * One function app instance inside the devhost: loads the app's entry files through
 * the real `@azure/functions` library, wires each function to the extension for its
 * trigger, and runs invocations with their input and output bindings.
 */
export class AppHost implements AppContext {
    readonly name: string;
    readonly port: number;
    readonly stateDir: string;
    readonly logger: Logger;
    readonly settings = process.env;
    folder!: AppFolder;
    runtime!: FunctionRuntime;
    #stopping = false;
    readonly #factories: ExtensionFactory[];
    readonly #extensions: BindingExtension[] = [];
    readonly #byTrigger = new Map<string, BindingExtension>();
    readonly #byInput = new Map<string, BindingExtension>();
    readonly #byOutput = new Map<string, BindingExtension>();
    readonly #unsupported: FunctionSummary[] = [];
    readonly systemRoutes: SystemRoute[] = [];

    constructor(opts: AppInstanceOptions) {
        this.name = opts.name;
        this.port = opts.port;
        this.stateDir = opts.stateDir;
        this.logger = opts.logger;
        this.#factories = opts.extensions ?? builtinExtensions;
    }

    get stopping(): boolean {
        return this.#stopping;
    }

    resolve(value: string): string {
        return resolveSettingReferences(value, this.settings);
    }

    async start(folderPath: string): Promise<FunctionSummary[]> {
        this.folder = readAppFolder(folderPath);
        this.runtime = new FunctionRuntime({ logger: this.logger, appDir: this.folder.dir });
        this.runtime.installCoreModule();
        const pkgType = (require(`${this.folder.dir}/package.json`) as { type?: string }).type;
        await this.runtime.loadEntryFiles(this.folder.entryFiles, pkgType);

        for (const factory of this.#factories) {
            const ext = factory(this);
            this.#extensions.push(ext);
            for (const t of ext.triggerTypes ?? []) this.#byTrigger.set(t.toLowerCase(), ext);
            for (const t of ext.inputTypes ?? []) this.#byInput.set(t.toLowerCase(), ext);
            for (const t of ext.outputTypes ?? []) this.#byOutput.set(t.toLowerCase(), ext);
        }
        for (const fn of this.runtime.functions.values()) {
            const ext = this.#byTrigger.get(fn.triggerType.toLowerCase());
            if (!ext?.addFunction) {
                this.#unsupported.push({ name: fn.metadata.name, trigger: fn.triggerType, detail: 'no local listener: not triggered' });
                this.logger.warn({ function: fn.metadata.name, trigger: fn.triggerType }, 'no devhost extension for this trigger type');
                continue;
            }
            ext.addFunction(fn);
            for (const [name, b] of Object.entries(fn.metadata.bindings)) {
                if (name === fn.triggerName) continue;
                const type = String(b.type).toLowerCase();
                const known = b.direction === 'out' ? this.#byOutput.has(type) : this.#byInput.has(type);
                if (!known) {
                    this.logger.warn({ function: fn.metadata.name, binding: name, type: b.type }, 'no devhost extension for this binding type');
                }
            }
        }

        await this.runtime.runAppStart();
        for (const ext of this.#extensions) await ext.start?.();
        // Locally the host name is this instance's own port (the durable client builds its URLs from it).
        process.env.WEBSITE_HOSTNAME ??= `localhost:${this.listeningPort}`;
        return this.summary();
    }

    addSystemRoute(route: SystemRoute): void {
        this.systemRoutes.push(route);
    }

    get capabilities(): Record<string, string> {
        return this.runtime?.capabilities ?? {};
    }

    get listeningPort(): number {
        return this.#extensions.find((e) => e.listeningPort)?.listeningPort ?? this.port;
    }

    summary(): FunctionSummary[] {
        const rows: FunctionSummary[] = [];
        for (const fn of this.runtime.functions.values()) {
            const ext = this.#byTrigger.get(fn.triggerType.toLowerCase());
            if (!ext) continue;
            rows.push({ name: fn.metadata.name, trigger: fn.triggerType, detail: ext.describe?.(fn) ?? '' });
        }
        return [...rows, ...this.#unsupported];
    }

    /** Graceful stop: no new invocations, those under way finish, then appTerminate hooks. */
    async stop(): Promise<void> {
        if (this.#stopping) return;
        this.#stopping = true;
        for (const ext of this.#extensions) await ext.stop?.();
        await this.runtime?.drain();
        await this.runtime?.runAppTerminate();
        for (const ext of this.#extensions) await ext.dispose?.();
    }

    async invoke(
        fn: RegisteredFunction,
        trigger: { data: RpcTypedData; triggerMetadata?: Record<string, RpcTypedData> },
        options?: InvokeOptions,
    ): Promise<RpcInvocationResponse> {
        countInvocation(fn.triggerType);
        const inputData: RpcParameterBinding[] = [{ name: fn.triggerName, data: trigger.data }];
        for (const [name, binding] of Object.entries(fn.metadata.bindings)) {
            if (name === fn.triggerName || binding.direction === 'out') continue;
            const ext = this.#byInput.get(String(binding.type).toLowerCase());
            if (ext?.provideInput) inputData.push({ name, data: await ext.provideInput({ ...binding, name }, fn) });
        }
        const response = await this.runtime.invoke(fn.metadata.name, {
            inputData,
            triggerMetadata: trigger.triggerMetadata,
            retryContext: options?.retryContext,
            invocationId: options?.invocationId,
        });
        for (const out of response.outputData ?? []) {
            const binding = out.name ? fn.metadata.bindings[out.name] : undefined;
            if (!binding || !out.data) continue;
            const ext = this.#byOutput.get(String(binding.type).toLowerCase());
            await ext?.handleOutput?.({ ...binding, name: out.name! }, out.data, fn);
        }
        return response;
    }
}
