/**
 * Typed errors of the domain and its adapters, mapped to problem+json in one place
 * (shared/http/problem.ts). Messages are safe to show to the caller; internal
 * causes stay in `cause` and go to the log only.
 */
export class AppError extends Error {
    constructor(
        message: string,
        readonly status: number,
        readonly code: string,
        options?: { cause?: unknown },
    ) {
        super(message, options);
        this.name = new.target.name;
    }
}

export interface FieldError {
    path: string;
    message: string;
}

export class Invalid extends AppError {
    constructor(message: string, readonly errors: FieldError[] = [], options?: { cause?: unknown }) {
        super(message, 400, 'invalid_input', options);
    }
}
/** The typed error of one status and code, whose message the thrower may leave to a default (`name` still names the subclass). */
function problemOf(status: number, code: string, defaultMessage: string) {
    return class extends AppError {
        constructor(message = defaultMessage, options?: { cause?: unknown }) {
            super(message, status, code, options);
        }
    };
}

export class Unauthorized extends problemOf(401, 'unauthorized', 'A valid bearer token is required') {}
export class Forbidden extends problemOf(403, 'forbidden', 'Not allowed for this caller') {}
export class NotFound extends problemOf(404, 'not_found', 'Not found') {}
export class MethodNotAllowed extends AppError {
    constructor(
        message: string,
        /** The methods the resource does take (the `Allow` header). */
        readonly allow: string[],
    ) {
        super(message, 405, 'method_not_allowed');
    }
}
export class Conflict extends AppError {
    constructor(message: string, code = 'conflict', options?: { cause?: unknown }) {
        super(message, 409, code, options);
    }
}
export class TooLarge extends problemOf(413, 'too_large', 'The body is too large') {}
export class UnsupportedMediaType extends problemOf(415, 'unsupported_media_type', 'Unsupported content type') {}
export class TooManyRequests extends problemOf(429, 'too_many_requests', 'Over quota') {}
/** A dependency (ledger, database, vault...) failed or answered nonsense. */
export class Upstream extends AppError {
    constructor(message: string, options?: { cause?: unknown }) {
        super(message, 502, 'upstream_failed', options);
    }
}
/** A dependency is unreachable or not ready: try again later. */
export class Unavailable extends AppError {
    constructor(message: string, options?: { cause?: unknown }) {
        super(message, 503, 'unavailable', options);
    }
}

/** HTTP status of an SDK error (Azure SDKs use `statusCode`, some `code`/`status`). */
export function statusOf(err: unknown): number | undefined {
    const e = err as { statusCode?: unknown; status?: unknown; code?: unknown };
    for (const v of [e?.statusCode, e?.status, e?.code]) {
        if (typeof v === 'number') return v;
    }
    return undefined;
}

// UND_ERR_SOCKET: undici's "other side closed", a kept-alive connection the server closed as it was reused.
const UNREACHABLE = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_SOCKET', 'UND_ERR_CLOSED']);

/** True for errors that mean "could not reach the dependency" rather than "it said no". */
export function isUnreachable(err: unknown): boolean {
    let e = err as { code?: unknown; cause?: unknown; name?: unknown } | undefined;
    for (let depth = 0; e && depth < 4; depth++) {
        if (typeof e.code === 'string' && UNREACHABLE.has(e.code)) return true;
        if (e.name === 'AbortError' || e.name === 'TimeoutError') return true;
        e = e.cause as typeof e;
    }
    return false;
}
