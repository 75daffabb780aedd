import { app, type HttpRequest, type HttpResponseInit } from '@azure/functions';
import { MethodNotAllowed, NotFound, type AppError } from '../shared/errors';
import { toProblem } from '../shared/http/problem';
import { deploymentRole, routeTable } from './http/route';

/**
 * The catch-all HTTP function: any path under the route prefix that no other function serves
 * answers a problem+json 404 (or 405 with `Allow`, when a route of this deployment serves the path
 * with other methods) instead of the host's bare 404. Both hosts try it last: a catch-all parameter
 * has the lowest route precedence (ASP.NET Core routing, which the Functions host and the devhost
 * follow), so it never shadows a real route. It is no API operation: the OpenAPI document leaves it out.
 */
export const CATCH_ALL_FUNCTION = 'notFound';
export const CATCH_ALL_ROUTE = '{*path}';

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'HEAD', 'OPTIONS'] as const;

/** A route template (`orgs/{orgId}/users/{userId?}`, `{*rest}`) as a matcher of its shape; constraints are not checked. */
function shape(template: string): RegExp {
    const segments = template.split('/').filter(Boolean);
    const pattern = segments
        .map((segment, i) => {
            const whole = /^\{(\*{0,2})[^}]*?(\?)?\}$/.exec(segment);
            if (whole?.[1]) return '(?:/.*)?';
            if (whole?.[2] && i === segments.length - 1) return '(?:/[^/]+)?';
            const parts = segment.split(/(\{[^}]*\})/).filter(Boolean);
            return '/' + parts.map((p) => (p.startsWith('{') ? '[^/]+' : p.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'))).join('');
        })
        .join('');
    return new RegExp(`^${pattern}/?$`, 'i');
}

export function unknownRoute(method: string, pathname: string): AppError {
    const path = '/' + pathname.replace(/^\/+/, '').replace(/^api(\/|$)/i, '');
    const served = routeTable.filter((r) => r.deployments.includes(deploymentRole()) && shape(r.route).test(path === '/' ? '' : path));
    const allow = [...new Set(served.flatMap((r) => r.methods))];
    // A route that takes this method but did not match (a constraint) is still no resource: 404.
    if (served.length > 0 && !allow.includes(method.toUpperCase())) return new MethodNotAllowed(`${method.toUpperCase()} is not allowed here`, allow);
    return new NotFound(`No route ${method.toUpperCase()} ${pathname}`);
}

app.http(CATCH_ALL_FUNCTION, {
    route: CATCH_ALL_ROUTE,
    methods: [...METHODS],
    authLevel: 'anonymous',
    handler: async (request: HttpRequest): Promise<HttpResponseInit> => {
        const err = unknownRoute(request.method, new URL(request.url).pathname);
        const headers: Record<string, string> = { 'content-type': 'application/problem+json', 'cache-control': 'no-store' };
        if (err instanceof MethodNotAllowed) headers.allow = err.allow.join(', ');
        const problem = toProblem(err);
        return { status: problem.status, headers, body: request.method === 'HEAD' ? undefined : JSON.stringify(problem) };
    },
});
