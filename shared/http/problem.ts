import { AppError, Invalid } from '../errors';

export interface Problem {
    type: string;
    title: string;
    status: number;
    detail: string;
    code: string;
    errors?: { path: string; message: string }[];
}

const TITLES: Record<number, string> = {
    400: 'Invalid input',
    401: 'Unauthorized',
    403: 'Forbidden',
    404: 'Not found',
    405: 'Method not allowed',
    409: 'Conflict',
    413: 'Payload too large',
    415: 'Unsupported media type',
    429: 'Too many requests',
    500: 'Internal error',
    502: 'Dependency failed',
    503: 'Unavailable',
};

/**
 * The one mapping from errors to RFC 9457 problem details. Known errors keep their
 * message; anything else becomes a bare 500 (its details go to the log, not the caller).
 */
export function toProblem(err: unknown): Problem {
    if (err instanceof AppError) {
        const problem: Problem = {
            type: `https://flexchange.example/problems/${err.code}`,
            title: TITLES[err.status] ?? 'Error',
            status: err.status,
            detail: err.message,
            code: err.code,
        };
        if (err instanceof Invalid && err.errors.length > 0) problem.errors = err.errors;
        return problem;
    }
    return { type: 'about:blank', title: TITLES[500], status: 500, detail: 'The request could not be completed', code: 'internal_error' };
}
