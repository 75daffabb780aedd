// Azurite ships no type declarations for its server classes; these are the parts the devhost uses.
declare module 'azurite/dist/src/blob/BlobServer' {
    export default class BlobServer {
        constructor(config: unknown);
        start(): Promise<void>;
        close(): Promise<void>;
        getHttpServerAddress(): string;
    }
}
declare module 'azurite/dist/src/queue/QueueServer' {
    export default class QueueServer {
        constructor(config: unknown);
        start(): Promise<void>;
        close(): Promise<void>;
        getHttpServerAddress(): string;
    }
}
declare module 'azurite/dist/src/table/TableServer' {
    export default class TableServer {
        constructor(config: unknown);
        start(): Promise<void>;
        close(): Promise<void>;
        getHttpServerAddress(): string;
    }
}
declare module 'azurite/dist/src/blob/BlobConfiguration' {
    export default class BlobConfiguration {
        constructor(...args: unknown[]);
    }
}
declare module 'azurite/dist/src/queue/QueueConfiguration' {
    export default class QueueConfiguration {
        constructor(...args: unknown[]);
    }
}
declare module 'azurite/dist/src/table/TableConfiguration' {
    export default class TableConfiguration {
        constructor(...args: unknown[]);
    }
}
