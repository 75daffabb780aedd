
/**
 * Subscription rule filters: correlation filters and the subset of Service Bus
 * SQL filters the local broker understands. A filter that uses anything outside
 * the subset is refused when the broker starts, never silently read as "match"
 * or "no match".
 *
 * SQL subset: `=`, `<>` (and `!=`, `<`, `<=`, `>`, `>=`), `[NOT] IN (...)`,
 * `AND`, `OR`, `NOT`, `EXISTS(prop)`, parentheses, and string ('it''s'),
 * number and boolean literals. Properties are application properties
 * (`color`, `user.color`, `[odd-name]`) or the system properties
 * `sys.MessageId`, `sys.CorrelationId`, `sys.Label` / `sys.Subject`, `sys.To`,
 * `sys.ReplyTo`, `sys.SessionId`, `sys.ReplyToSessionId`, `sys.ContentType`.
 * Missing properties are "unknown" as in SQL: a comparison with one is neither
 * true nor false, and only a filter that evaluates to true matches.
 *
 * Rule actions (compileAction): `SET prop = <literal or property>` and
 * `REMOVE prop` on application properties; a matching rule with an action
 * gives the subscription a copy of its own (see the broker's routing).
 */

/**
 * A value of an application property a rule compares with or sets. A date is
 * a `Date` in memory and `{ "$date": "<ISO 8601>" }` in JSON (the entities file,
 * the broker's saved changes), see toStorable.
 */
export type PropertyValue = string | number | boolean | Date;

/** A correlation filter: every field given must equal the message's (application properties by key). */
export interface CorrelationFilterConfig {
    properties?: Record<string, PropertyValue>;
    /** Old name of `subject`; both are accepted. */
    label?: string;
    subject?: string;
    correlationId?: string;
    messageId?: string;
    to?: string;
    replyTo?: string;
    sessionId?: string;
    replyToSessionId?: string;
    contentType?: string;
}

/** A subscription rule as declared: a correlation filter or a SQL filter of the supported subset, and optionally a SQL action. */
export interface RuleConfig {
    name: string;
    correlation?: CorrelationFilterConfig;
    sql?: string;
    /** `SET prop = <literal or property>` and `REMOVE prop` statements, `;`-separated, on application properties. */
    action?: string;
}

/** A compiled action: the application properties of the copy a matching rule produces. */
export type MessageAction = (m: RoutableMessage) => Record<string, unknown>;

/** What filters look at: the routed message's properties. */
export interface RoutableMessage {
    applicationProperties: Record<string, unknown>;
    messageId?: unknown;
    correlationId?: unknown;
    subject?: string;
    to?: string;
    replyTo?: string;
    sessionId?: string;
    replyToSessionId?: string;
    contentType?: string;
}

export type MessageFilter = (m: RoutableMessage) => boolean;

type SysName = 'messageId' | 'correlationId' | 'subject' | 'to' | 'replyTo' | 'sessionId' | 'replyToSessionId' | 'contentType';

const SYS_PROPERTIES: Record<string, SysName> = {
    messageid: 'messageId',
    correlationid: 'correlationId',
    label: 'subject',
    subject: 'subject',
    to: 'to',
    replyto: 'replyTo',
    sessionid: 'sessionId',
    replytosessionid: 'replyToSessionId',
    contenttype: 'contentType',
};

type Literal = string | number | boolean;
type Operand = { k: 'lit'; v: Literal } | { k: 'user'; name: string } | { k: 'sys'; name: SysName };
type CmpOp = '=' | '<>' | '<' | '<=' | '>' | '>=';
type Expr =
    | { k: 'and' | 'or'; a: Expr; b: Expr }
    | { k: 'not'; e: Expr }
    | { k: 'cmp'; op: CmpOp; l: Operand; r: Operand }
    | { k: 'in'; negated: boolean; v: Operand; list: Literal[] }
    | { k: 'exists'; p: Operand }
    | { k: 'bool'; v: boolean };

type Token =
    | { t: 'id'; v: string; at: number }
    | { t: 'str'; v: string; at: number }
    | { t: 'num'; v: number; at: number }
    | { t: 'op'; v: string; at: number }
    | { t: 'end'; at: number };

const KEYWORDS = new Set(['AND', 'OR', 'NOT', 'IN', 'EXISTS', 'TRUE', 'FALSE']);
// Recognised so that they can be refused by name rather than as a puzzling syntax error.
const UNSUPPORTED = new Set(['LIKE', 'IS', 'NULL', 'BETWEEN', 'ESCAPE', 'SET', 'REMOVE', 'NEWID']);

export class SqlFilterError extends Error {}

function tokenize(sql: string): Token[] {
    const out: Token[] = [];
    let i = 0;
    const err = (msg: string, at = i): never => {
        throw new SqlFilterError(`${msg} at position ${at + 1} of ${JSON.stringify(sql)}`);
    };
    while (i < sql.length) {
        const c = sql[i];
        if (/\s/.test(c)) {
            i++;
        } else if (c === "'") {
            let s = '';
            const at = i++;
            for (;;) {
                if (i >= sql.length) err('unterminated string', at);
                if (sql[i] === "'") {
                    if (sql[i + 1] === "'") {
                        s += "'";
                        i += 2;
                        continue;
                    }
                    i++;
                    break;
                }
                s += sql[i++];
            }
            out.push({ t: 'str', v: s, at });
        } else if (/[0-9]/.test(c) || (c === '.' && /[0-9]/.test(sql[i + 1] ?? ''))) {
            const m = /^(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?/.exec(sql.slice(i))!;
            if (/[A-Za-z_]/.test(sql[i + m[0].length] ?? '')) err('invalid number');
            out.push({ t: 'num', v: Number(m[0]), at: i });
            i += m[0].length;
        } else if (c === '[') {
            const end = sql.indexOf(']', i);
            if (end < 0) err('unterminated [name]');
            const name = sql.slice(i + 1, end);
            if (!name) err('empty [name]');
            out.push({ t: 'id', v: name, at: i });
            i = end + 1;
        } else if (/[A-Za-z_@]/.test(c)) {
            const m = /^[A-Za-z_@][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*|\.\[[^\]]+\])?/.exec(sql.slice(i))!;
            out.push({ t: 'id', v: m[0], at: i });
            i += m[0].length;
        } else {
            const two = sql.slice(i, i + 2);
            if (two === '<>' || two === '!=' || two === '<=' || two === '>=') {
                out.push({ t: 'op', v: two === '!=' ? '<>' : two, at: i });
                i += 2;
            } else if ('=<>(),-'.includes(c)) {
                out.push({ t: 'op', v: c, at: i });
                i++;
            } else {
                err(`unsupported character ${JSON.stringify(c)}`);
            }
        }
    }
    out.push({ t: 'end', at: sql.length });
    return out;
}

/** Parses a SQL filter of the supported subset; throws SqlFilterError naming what is not supported. */
export function parseSqlFilter(sql: string): Expr {
    if (typeof sql !== 'string' || !sql.trim()) throw new SqlFilterError('the SQL filter is empty');
    const toks = tokenize(sql);
    let p = 0;
    const peek = () => toks[p];
    const fail = (msg: string, tok: Token = peek()): never => {
        throw new SqlFilterError(`${msg} at position ${tok.at + 1} of ${JSON.stringify(sql)}`);
    };
    const isKw = (tok: Token, kw: string) => tok.t === 'id' && tok.v.toUpperCase() === kw;
    const isOp = (tok: Token, op: string) => tok.t === 'op' && tok.v === op;
    const expectOp = (op: string) => {
        if (!isOp(peek(), op)) fail(`expected "${op}"`);
        p++;
    };
    const rejectUnsupported = (tok: Token) => {
        if (tok.t === 'id' && UNSUPPORTED.has(tok.v.toUpperCase())) fail(`"${tok.v.toUpperCase()}" is not supported by the local Service Bus (supported: =, <>, <, <=, >, >=, [NOT] IN, AND, OR, NOT, EXISTS, parentheses, literals)`, tok);
    };

    const literal = (): Literal | undefined => {
        const tok = peek();
        if (tok.t === 'str' || tok.t === 'num') {
            p++;
            return tok.v;
        }
        if (isOp(tok, '-') && toks[p + 1].t === 'num') {
            p += 2;
            return -(toks[p - 1] as { v: number }).v;
        }
        if (isKw(tok, 'TRUE') || isKw(tok, 'FALSE')) {
            p++;
            return tok.t === 'id' && tok.v.toUpperCase() === 'TRUE';
        }
        return undefined;
    };

    const property = (tok: Token): Operand => {
        if (tok.t !== 'id') return fail('expected a property name', tok);
        const raw = tok.v;
        const dot = raw.indexOf('.');
        if (dot > 0) {
            const scope = raw.slice(0, dot).toLowerCase();
            const name = raw.slice(dot + 1).replace(/^\[(.*)\]$/, '$1');
            if (scope === 'user') return { k: 'user', name };
            if (scope === 'sys') {
                const sys = SYS_PROPERTIES[name.toLowerCase()];
                if (!sys) fail(`the system property "sys.${name}" is not supported by the local Service Bus (supported: ${Object.keys(SYS_PROPERTIES).join(', ')})`, tok);
                return { k: 'sys', name: sys! };
            }
            return fail(`unknown property scope "${raw.slice(0, dot)}" (use user. or sys.)`, tok);
        }
        if (raw.startsWith('@')) fail('parameters (@name) are not supported by the local Service Bus', tok);
        if (KEYWORDS.has(raw.toUpperCase())) fail(`unexpected keyword "${raw}"`, tok);
        rejectUnsupported(tok);
        return { k: 'user', name: raw };
    };

    const operand = (): Operand => {
        const lit = literal();
        if (lit !== undefined) return { k: 'lit', v: lit };
        const tok = peek();
        if (isOp(tok, '(')) fail('parenthesised values are not supported; compare a property with a literal');
        p++;
        return property(tok);
    };

    const primary = (): Expr => {
        const tok = peek();
        rejectUnsupported(tok);
        if (isOp(tok, '(')) {
            p++;
            const e = orExpr();
            expectOp(')');
            return e;
        }
        if (isKw(tok, 'EXISTS')) {
            p++;
            expectOp('(');
            const nameTok = peek();
            p++;
            const prop = property(nameTok);
            expectOp(')');
            return { k: 'exists', p: prop };
        }
        const l = operand();
        const next = peek();
        rejectUnsupported(next);
        if (next.t === 'op' && ['=', '<>', '<', '<=', '>', '>='].includes(next.v)) {
            p++;
            const r = operand();
            return { k: 'cmp', op: next.v as CmpOp, l, r };
        }
        let negated = false;
        if (isKw(next, 'NOT') && isKw(toks[p + 1], 'IN')) {
            negated = true;
            p++;
        }
        if (isKw(peek(), 'IN')) {
            p++;
            expectOp('(');
            const list: Literal[] = [];
            for (;;) {
                const v = literal();
                if (v === undefined) fail('IN (...) takes string, number or boolean literals only');
                list.push(v!);
                if (isOp(peek(), ',')) {
                    p++;
                    continue;
                }
                expectOp(')');
                break;
            }
            return { k: 'in', negated, v: l, list };
        }
        if (l.k === 'lit' && typeof l.v === 'boolean') return { k: 'bool', v: l.v };
        return fail('expected a comparison (=, <>, <, <=, >, >=, IN)', next);
    };

    const notExpr = (): Expr => {
        if (isKw(peek(), 'NOT')) {
            p++;
            return { k: 'not', e: notExpr() };
        }
        return primary();
    };
    const andExpr = (): Expr => {
        let e = notExpr();
        while (isKw(peek(), 'AND')) {
            p++;
            e = { k: 'and', a: e, b: notExpr() };
        }
        return e;
    };
    const orExpr = (): Expr => {
        let e = andExpr();
        while (isKw(peek(), 'OR')) {
            p++;
            e = { k: 'or', a: e, b: andExpr() };
        }
        return e;
    };

    const expr = orExpr();
    if (peek().t !== 'end') {
        rejectUnsupported(peek());
        fail('unexpected input');
    }
    return expr;
}

// Three-valued logic: undefined is SQL's "unknown".
type Tri = boolean | undefined;

function lookupUser(props: Record<string, unknown>, name: string): unknown {
    if (Object.prototype.hasOwnProperty.call(props, name)) return props[name];
    const lower = name.toLowerCase();
    for (const k of Object.keys(props)) if (k.toLowerCase() === lower) return props[k];
    return undefined;
}

function valueOf(o: Operand, m: RoutableMessage): unknown {
    if (o.k === 'lit') return o.v;
    if (o.k === 'user') return lookupUser(m.applicationProperties, o.name);
    return m[o.name];
}

function comparable(v: unknown): Literal | undefined {
    return typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : undefined;
}

function compare(op: CmpOp, a: unknown, b: unknown): Tri {
    if (a === undefined || a === null || b === undefined || b === null) return undefined;
    const x = comparable(a);
    const y = comparable(b);
    if (x === undefined || y === undefined || typeof x !== typeof y) {
        // Values of different types are never equal; they have no order.
        if (op === '=') return false;
        if (op === '<>') return true;
        return undefined;
    }
    switch (op) {
        case '=':
            return x === y;
        case '<>':
            return x !== y;
        case '<':
            return x < y;
        case '<=':
            return x <= y;
        case '>':
            return x > y;
        case '>=':
            return x >= y;
    }
}

function evaluate(e: Expr, m: RoutableMessage): Tri {
    switch (e.k) {
        case 'bool':
            return e.v;
        case 'exists':
            return valueOf(e.p, m) !== undefined;
        case 'cmp':
            return compare(e.op, valueOf(e.l, m), valueOf(e.r, m));
        case 'in': {
            const v = valueOf(e.v, m);
            if (v === undefined || v === null) return undefined;
            const found = e.list.some((item) => compare('=', v, item) === true);
            return e.negated ? !found : found;
        }
        case 'not': {
            const v = evaluate(e.e, m);
            return v === undefined ? undefined : !v;
        }
        case 'and': {
            const a = evaluate(e.a, m);
            if (a === false) return false;
            const b = evaluate(e.b, m);
            if (b === false) return false;
            return a === undefined || b === undefined ? undefined : true;
        }
        case 'or': {
            const a = evaluate(e.a, m);
            if (a === true) return true;
            const b = evaluate(e.b, m);
            if (b === true) return true;
            return a === undefined || b === undefined ? undefined : false;
        }
    }
}

export function compileSqlFilter(sql: string): MessageFilter {
    const expr = parseSqlFilter(sql);
    return (m) => evaluate(expr, m) === true;
}

const CORRELATION_KEYS: (keyof CorrelationFilterConfig)[] = ['properties', 'label', 'subject', 'correlationId', 'messageId', 'to', 'replyTo', 'sessionId', 'replyToSessionId', 'contentType'];

export function compileCorrelationFilter(c: CorrelationFilterConfig): MessageFilter {
    if (typeof c !== 'object' || c === null || Array.isArray(c)) throw new Error('"correlation" must be an object');
    for (const k of Object.keys(c)) if (!CORRELATION_KEYS.includes(k as keyof CorrelationFilterConfig)) throw new Error(`unknown correlation filter field "${k}" (known: ${CORRELATION_KEYS.join(', ')})`);
    if (c.label !== undefined && c.subject !== undefined && c.label !== c.subject) throw new Error('"label" and "subject" name the same property; give one');
    const system: [SysName, string][] = [];
    const add = (field: SysName, v: unknown, key: string) => {
        if (v === undefined) return;
        if (typeof v !== 'string') throw new Error(`correlation "${key}" must be a string`);
        system.push([field, v]);
    };
    add('subject', c.subject ?? c.label, c.subject !== undefined ? 'subject' : 'label');
    add('correlationId', c.correlationId, 'correlationId');
    add('messageId', c.messageId, 'messageId');
    add('to', c.to, 'to');
    add('replyTo', c.replyTo, 'replyTo');
    add('sessionId', c.sessionId, 'sessionId');
    add('replyToSessionId', c.replyToSessionId, 'replyToSessionId');
    add('contentType', c.contentType, 'contentType');
    const props: [string, PropertyValue][] = [];
    if (c.properties !== undefined) {
        if (typeof c.properties !== 'object' || c.properties === null || Array.isArray(c.properties)) throw new Error('correlation "properties" must be an object');
        for (const [k, raw] of Object.entries(c.properties)) {
            const v = propertyValue(raw);
            if (v === undefined) throw new Error(`correlation property "${k}" must be a string, number, boolean or date`);
            props.push([k, v]);
        }
    }
    if (system.length === 0 && props.length === 0) throw new Error('a correlation filter needs at least one field');
    const same = (a: unknown, b: PropertyValue) => (b instanceof Date ? a instanceof Date && a.getTime() === b.getTime() : a === b);
    return (m) => system.every(([field, v]) => m[field] === v) && props.every(([k, v]) => same(m.applicationProperties[k], v));
}

/** A property value as given in memory or in JSON (`{ "$date": ... }`), or undefined if it is not one. */
export function propertyValue(v: unknown): PropertyValue | undefined {
    if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') return v;
    if (v instanceof Date && Number.isFinite(v.getTime())) return v;
    if (typeof v === 'object' && v !== null && typeof (v as { $date?: unknown }).$date === 'string') {
        const d = new Date((v as { $date: string }).$date);
        return Number.isFinite(d.getTime()) ? d : undefined;
    }
    return undefined;
}

/** A rule with its correlation property values in memory form (dates as `Date`). */
export function normalizeRule(rule: RuleConfig): RuleConfig {
    const props = rule.correlation?.properties;
    if (!props) return rule;
    const out: Record<string, PropertyValue> = {};
    for (const [k, v] of Object.entries(props)) out[k] = propertyValue(v) ?? v;
    return { ...rule, correlation: { ...rule.correlation, properties: out } };
}

/** A value with its dates as `{ "$date": ISO }`, for JSON that reads back the same (see propertyValue). */
export function toStorable(value: unknown): unknown {
    if (value instanceof Date) return { $date: value.toISOString() };
    if (Array.isArray(value)) return value.map(toStorable);
    if (typeof value === 'object' && value !== null && !Buffer.isBuffer(value)) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toStorable(v)]));
    return value;
}

/**
 * Compiles a SQL rule action: `SET <property> = <literal | property>` and
 * `REMOVE <property>` on application properties, statements separated by `;`
 * (Service Bus's action language also has arithmetic, functions and `sys.`
 * assignments, which are refused by name).
 */
export function compileAction(sql: string): MessageAction {
    if (typeof sql !== 'string' || !sql.trim()) throw new SqlFilterError('the SQL action is empty');
    const statements: ({ k: 'set'; name: string; value: Operand } | { k: 'remove'; name: string })[] = [];
    for (const text of sql.split(/;(?=(?:[^']*'[^']*')*[^']*$)/)) {
        if (!text.trim()) continue;
        const m = /^\s*(SET|REMOVE)\s+(.+?)\s*(?:=\s*([\s\S]+?))?\s*$/i.exec(text);
        if (!m) throw new SqlFilterError(`expected SET <property> = <value> or REMOVE <property> in ${JSON.stringify(text.trim())}`);
        const verb = m[1].toUpperCase();
        const target = parseOperand(m[2], text);
        if (target.k !== 'user') throw new SqlFilterError(`only application properties can be set or removed by the local Service Bus (got ${JSON.stringify(m[2])})`);
        if (verb === 'REMOVE') {
            if (m[3] !== undefined) throw new SqlFilterError(`REMOVE takes a property only, in ${JSON.stringify(text.trim())}`);
            statements.push({ k: 'remove', name: target.name });
        } else {
            if (m[3] === undefined) throw new SqlFilterError(`SET needs "= <value>" in ${JSON.stringify(text.trim())}`);
            statements.push({ k: 'set', name: target.name, value: parseOperand(m[3], text) });
        }
    }
    if (statements.length === 0) throw new SqlFilterError('the SQL action is empty');
    return (m) => {
        const props = { ...m.applicationProperties };
        for (const st of statements) {
            const existing = Object.keys(props).find((k) => k.toLowerCase() === st.name.toLowerCase()) ?? st.name;
            if (st.k === 'remove') delete props[existing];
            else {
                const v = valueOf(st.value, { ...m, applicationProperties: props });
                if (v === undefined) delete props[existing];
                else props[existing] = v;
            }
        }
        return props;
    };
}

/** One operand of an action statement: a literal or a property, in the filter language's syntax. */
function parseOperand(text: string, statement: string): Operand {
    const refuse = () => new SqlFilterError(`${JSON.stringify(text.trim())} in ${JSON.stringify(statement.trim())} is not a literal or a property (expressions are not supported by the local Service Bus)`);
    let expr: Expr;
    try {
        expr = parseSqlFilter(`${text} = 0`);
    } catch {
        throw refuse();
    }
    if (expr.k !== 'cmp') throw refuse();
    return expr.l;
}

export function compileRule(rule: RuleConfig): MessageFilter {
    const hasCorrelation = rule.correlation !== undefined;
    const hasSql = rule.sql !== undefined;
    if (hasCorrelation === hasSql) throw new Error('a rule needs exactly one of "correlation" or "sql"');
    return hasSql ? compileSqlFilter(rule.sql!) : compileCorrelationFilter(rule.correlation!);
}

/** A rule's filter and, when it has one, its action. */
export function compileRuleWithAction(rule: RuleConfig): { matches: MessageFilter; action?: MessageAction } {
    const matches = compileRule(rule);
    return rule.action === undefined ? { matches } : { matches, action: compileAction(rule.action) };
}
