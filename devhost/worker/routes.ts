/**
 * Route templates as the Functions host reads them (ASP.NET Core routing syntax):
 * literals, `{id}`, `{id:int}`, `{id:range(1,9)}`, `{x?}`, `{x=default}`, `{*rest}`,
 * and complex segments such as `{name}.{ext}`. Literals match case-insensitively.
 */

export class RouteTemplateError extends Error {}

type Constraint = (value: string) => boolean;

interface ParamPart {
    kind: 'param';
    name: string;
    optional: boolean;
    catchAll: boolean;
    defaultValue?: string;
    constraints: Constraint[];
}
interface LiteralPart {
    kind: 'literal';
    text: string;
}
type Part = ParamPart | LiteralPart;

export interface CompiledRoute {
    template: string;
    regex: RegExp;
    params: ParamPart[];
    /** Lower sorts first: literals beat constrained parameters beat parameters beat catch-alls. */
    precedence: number[];
}

const numberRe = /^-?\d+$/;
const decimalRe = /^-?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$/;

function guid(value: string): boolean {
    const v = value.replace(/^\{(.*)\}$/, '$1').replace(/^\((.*)\)$/, '$1');
    return /^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$/.test(v);
}

function intIn(min: bigint, max: bigint): Constraint {
    return (v) => numberRe.test(v) && BigInt(v) >= min && BigInt(v) <= max;
}

function num(v: string): number {
    return decimalRe.test(v) ? Number(v) : NaN;
}

function buildConstraint(spec: string, template: string): Constraint {
    const m = /^([a-zA-Z]+)(?:\((.*)\))?$/s.exec(spec);
    if (!m) throw new RouteTemplateError(`Invalid constraint "${spec}" in route "${template}"`);
    const name = m[1].toLowerCase();
    const arg = m[2];
    const nums = () => (arg ?? '').split(',').map((a) => Number(a.trim()));
    switch (name) {
        case 'int':
            return intIn(-(2n ** 31n), 2n ** 31n - 1n);
        case 'long':
            return intIn(-(2n ** 63n), 2n ** 63n - 1n);
        case 'bool':
            return (v) => /^(true|false)$/i.test(v);
        case 'datetime':
            return (v) => !Number.isNaN(Date.parse(v));
        case 'decimal':
        case 'double':
        case 'float':
            return (v) => Number.isFinite(num(v));
        case 'guid':
            return guid;
        case 'alpha':
            return (v) => /^[a-zA-Z]*$/.test(v);
        case 'required':
            return (v) => v.length > 0;
        case 'minlength': {
            const [n] = nums();
            return (v) => v.length >= n;
        }
        case 'maxlength': {
            const [n] = nums();
            return (v) => v.length <= n;
        }
        case 'length': {
            const [a, b] = nums();
            return b === undefined ? (v) => v.length === a : (v) => v.length >= a && v.length <= b;
        }
        case 'min': {
            const [n] = nums();
            return (v) => numberRe.test(v) && Number(v) >= n;
        }
        case 'max': {
            const [n] = nums();
            return (v) => numberRe.test(v) && Number(v) <= n;
        }
        case 'range': {
            const [a, b] = nums();
            return (v) => numberRe.test(v) && Number(v) >= a && Number(v) <= b;
        }
        case 'regex': {
            if (arg === undefined) throw new RouteTemplateError(`regex constraint needs a pattern in route "${template}"`);
            // Braces in a route template are escaped by doubling them.
            const re = new RegExp(arg.replace(/\{\{/g, '{').replace(/\}\}/g, '}'), 'i');
            return (v) => re.test(v);
        }
        default:
            throw new RouteTemplateError(`Unknown route constraint "${name}" in route "${template}"`);
    }
}

/** Splits `{name:c1:c2(a:b)?}` into its name and constraints, honouring parentheses. */
function parseParam(body: string, template: string): ParamPart {
    let catchAll = false;
    let text = body;
    if (text.startsWith('**')) {
        catchAll = true;
        text = text.slice(2);
    } else if (text.startsWith('*')) {
        catchAll = true;
        text = text.slice(1);
    }
    let optional = false;
    if (text.endsWith('?')) {
        optional = true;
        text = text.slice(0, -1);
    }
    let defaultValue: string | undefined;
    const pieces: string[] = [];
    let depth = 0;
    let current = '';
    for (let i = 0; i < text.length; i++) {
        const c = text[i];
        if (c === '(') depth++;
        if (c === ')') depth--;
        if (c === ':' && depth === 0) {
            pieces.push(current);
            current = '';
        } else if (c === '=' && depth === 0 && defaultValue === undefined) {
            pieces.push(current);
            current = '';
            defaultValue = text.slice(i + 1);
            break;
        } else {
            current += c;
        }
    }
    if (defaultValue === undefined) pieces.push(current);
    const [name, ...constraintSpecs] = pieces;
    if (!name || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) {
        throw new RouteTemplateError(`Invalid parameter name "${name ?? ''}" in route "${template}"`);
    }
    if (optional && defaultValue !== undefined) {
        throw new RouteTemplateError(`Parameter "${name}" cannot be both optional and have a default in route "${template}"`);
    }
    return {
        kind: 'param',
        name,
        optional,
        catchAll,
        defaultValue,
        constraints: constraintSpecs.map((s) => buildConstraint(s, template)),
    };
}

function parseSegment(segment: string, template: string): Part[] {
    const parts: Part[] = [];
    let i = 0;
    let literal = '';
    while (i < segment.length) {
        const c = segment[i];
        if (c === '{') {
            if (segment[i + 1] === '{') {
                literal += '{';
                i += 2;
                continue;
            }
            let depth = 0;
            let j = i + 1;
            for (; j < segment.length; j++) {
                if (segment[j] === '(') depth++;
                else if (segment[j] === ')') depth--;
                else if (segment[j] === '}' && depth === 0) break;
            }
            if (j >= segment.length) throw new RouteTemplateError(`Unclosed "{" in route "${template}"`);
            if (literal) parts.push({ kind: 'literal', text: literal });
            literal = '';
            parts.push(parseParam(segment.slice(i + 1, j), template));
            i = j + 1;
        } else if (c === '}') {
            if (segment[i + 1] === '}') {
                literal += '}';
                i += 2;
                continue;
            }
            throw new RouteTemplateError(`Unexpected "}" in route "${template}"`);
        } else {
            literal += c;
            i++;
        }
    }
    if (literal) parts.push({ kind: 'literal', text: literal });
    return parts;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** Compiles `prefix` + `template` into a matcher over the request path (no query, no leading slash needed). */
export function compileRoute(template: string, prefix = ''): CompiledRoute {
    const full = [prefix, template].map((s) => s.replace(/^\/+|\/+$/g, '')).filter(Boolean).join('/');
    const segments = full === '' ? [] : full.split('/');
    const params: ParamPart[] = [];
    const precedence: number[] = [];
    let pattern = '^';
    let sawOptional = false;
    segments.forEach((segment, index) => {
        if (segment === '') throw new RouteTemplateError(`Empty segment in route "${template}"`);
        const parts = parseSegment(segment, template);
        const isLast = index === segments.length - 1;
        const single = parts.length === 1 ? parts[0] : undefined;
        if (single && single.kind === 'param') {
            const p = single;
            if (p.catchAll && !isLast) throw new RouteTemplateError(`A catch-all parameter must be last in route "${template}"`);
            params.push(p);
            const group = p.catchAll ? '(.*)' : '([^/]+)';
            if (p.optional || p.defaultValue !== undefined || p.catchAll) {
                sawOptional = true;
                pattern += `(?:/${group})?`;
            } else {
                if (sawOptional) throw new RouteTemplateError(`An optional parameter must be at the end of route "${template}"`);
                pattern += `/${group}`;
            }
            precedence.push(p.catchAll ? (p.constraints.length ? 5 : 6) : p.constraints.length ? 3 : 4);
            return;
        }
        if (sawOptional) throw new RouteTemplateError(`An optional parameter must be at the end of route "${template}"`);
        let seg = '';
        parts.forEach((part, k) => {
            if (part.kind === 'literal') {
                seg += escapeRe(part.text);
            } else {
                if (part.catchAll) throw new RouteTemplateError(`A catch-all parameter must be a whole segment in route "${template}"`);
                if (part.optional && k !== parts.length - 1) {
                    throw new RouteTemplateError(`An optional parameter in a complex segment must be last in route "${template}"`);
                }
                params.push(part);
                seg += part.optional ? '([^/]*)' : '([^/]+)'; // greedy: ASP.NET matches complex segments from the right
            }
        });
        pattern += `/${seg}`;
        precedence.push(single ? 1 : 2);
    });
    pattern += '/?$';
    return { template, regex: new RegExp(pattern, 'i'), params, precedence };
}

/** Matches a request path (already stripped of its query); returns the decoded parameters, or undefined. */
export function matchRoute(route: CompiledRoute, pathname: string): Record<string, string> | undefined {
    const normalized = '/' + pathname.replace(/^\/+/, '');
    const m = route.regex.exec(normalized === '/' ? '' : normalized);
    if (!m) return undefined;
    const values: Record<string, string> = {};
    for (let i = 0; i < route.params.length; i++) {
        const p = route.params[i];
        const raw = m[i + 1];
        let value: string | undefined;
        if (raw === undefined || raw === '') {
            if (p.defaultValue !== undefined) value = p.defaultValue;
            else if (p.optional || p.catchAll) continue;
            else return undefined;
        } else {
            try {
                value = p.catchAll ? raw.split('/').map(decodeURIComponent).join('/') : decodeURIComponent(raw);
            } catch {
                return undefined;
            }
        }
        if (!p.constraints.every((c) => c(value))) return undefined;
        values[p.name] = value;
    }
    return values;
}

/** Orders routes so that the most specific is tried first, as ASP.NET Core's inbound precedence does. */
export function compareRoutes(a: CompiledRoute, b: CompiledRoute): number {
    const n = Math.max(a.precedence.length, b.precedence.length);
    for (let i = 0; i < n; i++) {
        const x = a.precedence[i] ?? 0;
        const y = b.precedence[i] ?? 0;
        if (x !== y) return x - y;
    }
    return 0;
}
