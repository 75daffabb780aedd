import { readdirSync } from 'node:fs';
import path from 'node:path';
import { compareRoutes, compileRoute, matchRoute, RouteTemplateError } from '../../devhost/worker/routes';

const match = (template: string, path: string, prefix = 'api') => matchRoute(compileRoute(template, prefix), path);

describe('route templates', () => {
    it('matches literals case-insensitively, with or without a trailing slash', () => {
        expect(match('orgs/list', '/api/Orgs/LIST')).toEqual({});
        expect(match('orgs/list', '/api/orgs/list/')).toEqual({});
        expect(match('orgs/list', '/api/orgs')).toBeUndefined();
        expect(match('orgs/list', '/orgs/list')).toBeUndefined();
    });

    it('works with an empty route prefix', () => {
        expect(match('health', '/health', '')).toEqual({});
        expect(match('health', '/api/health', '')).toBeUndefined();
    });

    it('decodes parameter values and keeps slashes in a catch-all', () => {
        expect(match('orgs/{orgId}', '/api/orgs/a%2Fb')).toEqual({ orgId: 'a/b' });
        expect(match('blobs/{**path}', '/api/blobs/x/y%20z')).toEqual({ path: 'x/y z' });
    });

    it('checks int and long ranges', () => {
        expect(match('n/{v:int}', '/api/n/2147483647')).toEqual({ v: '2147483647' });
        expect(match('n/{v:int}', '/api/n/2147483648')).toBeUndefined();
        expect(match('n/{v:long}', '/api/n/2147483648')).toEqual({ v: '2147483648' });
        expect(match('n/{v:int}', '/api/n/-5')).toEqual({ v: '-5' });
    });

    it('supports bool, datetime, decimal, min, max, length constraints', () => {
        expect(match('b/{v:bool}', '/api/b/TRUE')).toEqual({ v: 'TRUE' });
        expect(match('b/{v:bool}', '/api/b/yes')).toBeUndefined();
        expect(match('d/{v:datetime}', '/api/d/2026-11-24')).toEqual({ v: '2026-11-24' });
        expect(match('d/{v:datetime}', '/api/d/tomorrow')).toBeUndefined();
        expect(match('m/{v:decimal}', '/api/m/12.50')).toEqual({ v: '12.50' });
        expect(match('m/{v:min(10)}', '/api/m/9')).toBeUndefined();
        expect(match('m/{v:max(10)}', '/api/m/10')).toEqual({ v: '10' });
        expect(match('l/{v:length(3)}', '/api/l/abc')).toEqual({ v: 'abc' });
        expect(match('l/{v:length(1,2)}', '/api/l/abc')).toBeUndefined();
    });

    it('supports an optional constrained parameter', () => {
        expect(match('p/{page:int?}', '/api/p')).toEqual({});
        expect(match('p/{page:int?}', '/api/p/3')).toEqual({ page: '3' });
        expect(match('p/{page:int?}', '/api/p/x')).toBeUndefined();
    });

    it('rejects malformed templates with a clear error', () => {
        expect(() => compileRoute('a/{id')).toThrow(RouteTemplateError);
        expect(() => compileRoute('a/{*rest}/b')).toThrow(/catch-all parameter must be last/);
        expect(() => compileRoute('a/{x?}/b')).toThrow(/optional parameter must be at the end/);
        expect(() => compileRoute('a/{id:nonsense}')).toThrow(/Unknown route constraint "nonsense"/);
        expect(() => compileRoute('a/{1bad}')).toThrow(/Invalid parameter name/);
    });

    it('orders literal before constrained before plain before catch-all', () => {
        const routes = ['items/{*rest}', 'items/{name}', 'items/{id:int}', 'items/special'].map((t) => compileRoute(t, 'api'));
        routes.sort(compareRoutes);
        expect(routes.map((r) => r.template)).toEqual(['items/special', 'items/{id:int}', 'items/{name}', 'items/{*rest}']);
    });

    it("tries the app's catch-all after every route of the app, so it never shadows one", () => {
        const quiet = jest.spyOn(console, 'warn').mockImplementation(() => undefined);
        // Loading every function file fills the route table (outside a host the library only warns that it is in test mode).
        for (const f of readdirSync(path.join(__dirname, '..', '..', 'functions')).filter((n) => n.endsWith('.ts'))) require(path.join(__dirname, '..', '..', 'functions', f));
        quiet.mockRestore();
        const { routeTable } = require('../../functions/http/route') as typeof import('../../functions/http/route');
        const { CATCH_ALL_ROUTE } = require('../../functions/notFound') as typeof import('../../functions/notFound');
        const catchAll = compileRoute(CATCH_ALL_ROUTE, 'api');
        expect(routeTable.length).toBeGreaterThan(20);
        for (const r of routeTable) {
            const route = compileRoute(r.route, 'api');
            expect([r.route, Math.sign(compareRoutes(route, catchAll))]).toEqual([r.route, -1]);
            expect([r.route, [catchAll, route].sort(compareRoutes)[0]!.template]).toEqual([r.route, r.route]);
        }
        expect(matchRoute(catchAll, '/api/anything/at/all')).toEqual({ path: 'anything/at/all' });
        expect(matchRoute(catchAll, '/api')).toEqual({});
    });
});
