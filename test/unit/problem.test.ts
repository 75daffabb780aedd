import { Conflict, Invalid, NotFound, Unavailable, Upstream } from '../../shared/errors';
import { toProblem } from '../../shared/http/problem';

describe('problem+json mapping', () => {
    it('keeps the status, code and message of known errors, with field errors for invalid input', () => {
        expect(toProblem(new Invalid('The body is not valid', [{ path: 'terms.quantityMWh', message: 'must be positive' }]))).toEqual({
            type: 'https://flexchange.example/problems/invalid_input',
            title: 'Invalid input',
            status: 400,
            detail: 'The body is not valid',
            code: 'invalid_input',
            errors: [{ path: 'terms.quantityMWh', message: 'must be positive' }],
        });
        expect(toProblem(new NotFound())).toMatchObject({ status: 404, code: 'not_found' });
        expect(toProblem(new Conflict('Changed since it was read', 'stale_etag'))).toMatchObject({ status: 409, code: 'stale_etag' });
        expect(toProblem(new Upstream('The ledger failed'))).toMatchObject({ status: 502, title: 'Dependency failed' });
        expect(toProblem(new Unavailable('The vault is unreachable'))).toMatchObject({ status: 503, code: 'unavailable' });
    });

    it('hides anything unexpected behind a bare 500', () => {
        const problem = toProblem(new Error('connect ECONNREFUSED 10.0.0.4:8545 at Socket.internal'));
        expect(problem).toEqual({ type: 'about:blank', title: 'Internal error', status: 500, detail: 'The request could not be completed', code: 'internal_error' });
        expect(JSON.stringify(problem)).not.toContain('10.0.0.4');
    });
});
