import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import ts from 'typescript';

/**
 * The shape the code keeps (README "Layout"): handlers are tables of contents, files stay a size
 * a reader can hold, and the contract is reached through its one port. Measured with the
 * TypeScript compiler's own parser, over the files as they are.
 */
const ROOT = path.resolve(__dirname, '../..');
const PRODUCT = ['functions', 'orchestrations', 'shared', 'devhost', 'devprofile', 'scripts', 'bench', 'contracts'];

function sources(dir: string): string[] {
    const out: string[] = [];
    for (const name of readdirSync(path.join(ROOT, dir))) {
        const rel = path.join(dir, name);
        if (statSync(path.join(ROOT, rel)).isDirectory()) {
            if (name !== 'node_modules' && name !== 'artifacts') out.push(...sources(rel));
        } else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(rel);
    }
    return out;
}

const parse = (rel: string) => ts.createSourceFile(rel, readFileSync(path.join(ROOT, rel), 'utf8'), ts.ScriptTarget.Latest, true);
const lineOf = (file: ts.SourceFile, pos: number) => file.getLineAndCharacterOfPosition(pos).line + 1;

/** Each `httpRoute(name, { handler })` in a file: its name and how many lines its handler spans. */
function handlers(rel: string): { name: string; lines: number }[] {
    const file = parse(rel);
    const found: { name: string; lines: number }[] = [];
    const visit = (node: ts.Node) => {
        if (ts.isCallExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'httpRoute') {
            const [name, options] = node.arguments;
            if (name && ts.isStringLiteral(name) && options && ts.isObjectLiteralExpression(options)) {
                const handler = options.properties.find((p) => p.name && ts.isIdentifier(p.name) && p.name.text === 'handler');
                if (handler) found.push({ name: name.text, lines: lineOf(file, handler.getEnd()) - lineOf(file, handler.getStart(file)) + 1 });
            }
        }
        ts.forEachChild(node, visit);
    };
    visit(file);
    return found;
}

describe('the shape of the code', () => {
    it('keeps every HTTP handler a table of contents (at most 25 lines)', () => {
        const all = sources('functions').flatMap((rel) => handlers(rel).map((h) => ({ ...h, file: rel })));
        expect(all.length).toBeGreaterThanOrEqual(40);
        expect(all.filter((h) => h.lines > 25).map((h) => `${h.file} ${h.name}: ${h.lines} lines`)).toEqual([]);
    });

    it('keeps every file in shared/ under 400 lines', () => {
        const long = sources('shared')
            .map((rel) => ({ rel, lines: (readFileSync(path.join(ROOT, rel), 'utf8').match(/\n/g) ?? []).length }))
            .filter((f) => f.lines >= 400);
        expect(long.map((f) => `${f.rel}: ${f.lines} lines`)).toEqual([]);
    });

    it('reaches the contract only through its port: no ABI fragment, Interface or eth_call elsewhere (the pipeline decodes reverts; the provider, the transport, names which JSON-RPC reads it may ask again)', () => {
        const allowed = (rel: string) => rel === path.join('shared', 'chain', 'energyExchange.ts') || /^shared\/chain\/(pipeline|reverts|provider\.ts$)/.test(rel.split(path.sep).join('/'));
        const offending: string[] = [];
        for (const rel of PRODUCT.flatMap(sources)) {
            if (allowed(rel)) continue;
            const file = parse(rel);
            const visit = (node: ts.Node) => {
                if (ts.isNewExpression(node) && ts.isIdentifier(node.expression) && node.expression.text === 'Interface') offending.push(`${rel}:${lineOf(file, node.getStart(file))} new Interface(`);
                if (ts.isPropertyAccessExpression(node) && node.name.text === 'from' && ts.isIdentifier(node.expression) && node.expression.text === 'Interface') offending.push(`${rel}:${lineOf(file, node.getStart(file))} Interface.from`);
                if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && /^(function|event|error) \w+\(/.test(node.text)) offending.push(`${rel}:${lineOf(file, node.getStart(file))} ABI fragment "${node.text}"`);
                if ((ts.isStringLiteral(node) || ts.isNoSubstitutionTemplateLiteral(node)) && node.text === 'eth_call') offending.push(`${rel}:${lineOf(file, node.getStart(file))} raw eth_call`);
                ts.forEachChild(node, visit);
            };
            visit(file);
        }
        expect(offending).toEqual([]);
    });
});
