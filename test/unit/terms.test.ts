import { TypedDataEncoder, verifyTypedData, Wallet } from 'ethers';
import { newProposal } from '../../shared/proposals/model';
import { chainProposalId } from '../../shared/proposals/proposals';
import { proposalTypedData, termsDigest, termsStructHash, toUnits, type SigningDomain, type TermsSource } from '../../shared/proposals/terms';

/** A proposal's terms as EIP-712 typed data: integers in stated units, bound to one chain and contract, checkable with ethers. */
describe('proposal terms as typed data', () => {
    const [a, b] = [Wallet.createRandom(), Wallet.createRandom()];
    const id = '0d2f7a3e-5b1c-4c9e-8f0a-1b2c3d4e5f60';
    const proposal: TermsSource = {
        chainId: chainProposalId(id),
        parties: [{ account: a.address }, { account: b.address }],
        terms: { product: 'baseload', direction: 'sell', quantityMWh: 10.5, priceGbpPerMWh: -12.34, deliveryStart: '2027-01-01T00:00:00.000Z', deliveryEnd: '2027-01-01T00:30:00.000Z' },
        assets: [{ sha256: 'ab'.repeat(32), algorithm: 'sha256' }],
        expiresAt: '2026-12-31T12:00:00.000Z',
    };
    const domain: SigningDomain = { name: 'Flexchange EnergyExchange', version: '2', chainId: 31337, verifyingContract: Wallet.createRandom().address };

    it('states amounts as integers of their units and times in seconds', () => {
        const { message, primaryType } = proposalTypedData(proposal, domain);
        expect(primaryType).toBe('Proposal');
        expect(message).toEqual({
            id: proposal.chainId,
            parties: [a.address, b.address],
            product: 'baseload',
            direction: 'sell',
            quantityKWh: '10500',
            pricePencePerMWh: '-1234',
            deliveryStart: Date.parse('2027-01-01T00:00:00Z') / 1000,
            deliveryEnd: Date.parse('2027-01-01T00:30:00Z') / 1000,
            documents: [{ hash: `0x${'ab'.repeat(32)}`, algorithm: 'sha256' }],
            deadline: Date.parse('2026-12-31T12:00:00Z') / 1000,
        });
    });

    it('gives the digest standard tooling computes, and a party’s signature over it recovers the party', async () => {
        const td = proposalTypedData(proposal, domain);
        expect(termsDigest(td)).toBe(TypedDataEncoder.hash(td.domain, td.types, td.message));
        expect(termsStructHash(td)).toBe(TypedDataEncoder.hashStruct('Proposal', td.types, td.message));
        const signature = await a.signTypedData(td.domain, td.types, td.message);
        expect(verifyTypedData(td.domain, td.types, td.message, signature)).toBe(a.address);
    });

    it('changes the digest with any term, the chain or the contract, so a signature does not carry over', async () => {
        const td = proposalTypedData(proposal, domain);
        const signature = await a.signTypedData(td.domain, td.types, td.message);
        const variants: TermsSource[] = [
            { ...proposal, terms: { ...proposal.terms, quantityMWh: 10.501 } },
            { ...proposal, terms: { ...proposal.terms, priceGbpPerMWh: -12.33 } },
            { ...proposal, terms: { ...proposal.terms, direction: 'buy' } },
            { ...proposal, chainId: chainProposalId('another') },
            { ...proposal, assets: [{ sha256: 'cd'.repeat(32), algorithm: 'sha256' }] },
            { ...proposal, expiresAt: '2026-12-31T12:00:01.000Z' },
        ];
        const domains: SigningDomain[] = [{ ...domain, chainId: 1 }, { ...domain, verifyingContract: Wallet.createRandom().address }, { ...domain, version: '1' }];
        const others = [...variants.map((v) => proposalTypedData(v, domain)), ...domains.map((d) => proposalTypedData(proposal, d))];
        for (const other of others) {
            expect(termsDigest(other)).not.toBe(termsDigest(td));
            expect(verifyTypedData(other.domain, other.types, other.message, signature)).not.toBe(a.address);
        }
    });

    it('refuses amounts finer than their units, in the request and in the builder', () => {
        expect(toUnits(0.001, 3)).toBe(1n);
        expect(toUnits(71.5, 2)).toBe(7150n);
        expect(toUnits(0.0001, 3)).toBeUndefined();
        expect(toUnits(71.555, 2)).toBeUndefined();
        expect(toUnits(Number.NaN, 2)).toBeUndefined();
        const request = (terms: object) => ({ parties: [{ orgId: 'a', account: a.address }, { orgId: 'b', account: b.address }], terms: { ...proposal.terms, ...terms }, assets: [id], expiresAt: proposal.expiresAt });
        expect(newProposal.safeParse(request({})).success).toBe(true);
        const fine = newProposal.safeParse(request({ quantityMWh: 1.0005, priceGbpPerMWh: 71.555 }));
        expect(fine.success).toBe(false);
        expect(fine.error!.issues.map((i) => i.path.join('.')).sort()).toEqual(['terms.priceGbpPerMWh', 'terms.quantityMWh']);
        expect(() => proposalTypedData({ ...proposal, terms: { ...proposal.terms, quantityMWh: 1.0005 } }, domain)).toThrow(/finer than their units/);
    });
});
