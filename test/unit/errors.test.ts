import { AppError, Forbidden, NotFound, TooLarge, TooManyRequests, Unauthorized, UnsupportedMediaType } from '../../shared/errors';
import { toProblem } from '../../shared/http/problem';

describe('typed errors', () => {
    it.each([
        [Unauthorized, 'Unauthorized', 401, 'unauthorized', 'A valid bearer token is required'],
        [Forbidden, 'Forbidden', 403, 'forbidden', 'Not allowed for this caller'],
        [NotFound, 'NotFound', 404, 'not_found', 'Not found'],
        [TooLarge, 'TooLarge', 413, 'too_large', 'The body is too large'],
        [UnsupportedMediaType, 'UnsupportedMediaType', 415, 'unsupported_media_type', 'Unsupported content type'],
        [TooManyRequests, 'TooManyRequests', 429, 'too_many_requests', 'Over quota'],
    ])('%p has its name, status, code and default message, and takes a message and a cause', (Kind, name, status, code, message) => {
        const plain = new Kind();
        expect(plain).toBeInstanceOf(Kind);
        expect(plain).toBeInstanceOf(AppError);
        expect(plain).toMatchObject({ name, status, code, message });
        const cause = new Error('internal');
        const told = new Kind('Said otherwise', { cause });
        expect(told).toMatchObject({ message: 'Said otherwise', status, code, cause });
        expect(toProblem(told)).toMatchObject({ status, code, detail: 'Said otherwise' });
    });

    it('are told apart by class', () => {
        expect(new NotFound()).not.toBeInstanceOf(Forbidden);
        expect(new Forbidden()).not.toBeInstanceOf(NotFound);
    });
});
