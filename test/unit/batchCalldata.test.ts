import { randomBytes } from 'node:crypto';
import { getAddress, hexlify, Interface } from 'ethers';
import { ENERGY_EXCHANGE, ENERGY_EXCHANGE_V2 } from '../../shared/chain/artifact';
import { encodeCreateProposals, encodeSubmitSignatures } from '../../shared/chain/batchCalldata';
import { EnergyExchange } from '../../shared/chain/energyExchange';

/** EnergyExchange v2's batch calls encoded over Buffers: the very bytes ethers' ABI coder gives. */
describe('v2 batch call data', () => {
    const iface = new Interface(ENERGY_EXCHANGE_V2.abi);
    const create = iface.getFunction('createProposals')!;
    const submit = iface.getFunction('submitSignatures')!;
    const hex = (n: number) => hexlify(randomBytes(n));
    const account = () => getAddress(hex(20));
    const anchors = (n: number) => Array.from({ length: n }, (_, i) => ({ id: hex(32), termsHash: hex(32), parties: Array.from({ length: 1 + (i % 8) }, account), deadline: BigInt(1_800_000_000 + i) }));
    const signatures = (n: number, length = 65) => Array.from({ length: n }, (_, i) => ({ id: hex(32), party: i % 2 ? account() : account().toLowerCase(), signature: hex(i === 1 ? 0 : i === 2 ? 64 : length) }));

    it.each([0, 1, 3, 100])('createProposals with %i items', (n) => {
        const items = anchors(n);
        expect(encodeCreateProposals(create, items)).toBe(iface.encodeFunctionData(create, [items]));
    });

    it.each([0, 1, 3, 200])('submitSignatures with %i items (65, 64 and 0-byte signatures)', (n) => {
        const items = signatures(n);
        expect(encodeSubmitSignatures(submit, items)).toBe(iface.encodeFunctionData(submit, [items]));
    });

    it('the contract port uses it, and its own decoder reads the items back', () => {
        const v2 = new EnergyExchange({ version: 2, address: account() }, ENERGY_EXCHANGE_V2.abi, { rpc: () => Promise.reject(new Error('no ledger')) });
        const items = signatures(5).map((s) => ({ chainProposalId: s.id, party: getAddress(s.party), signature: s.signature }));
        const { data } = v2.submitSignatures(items);
        expect(data).toBe(iface.encodeFunctionData(submit, [items.map((x) => ({ id: x.chainProposalId, party: x.party, signature: x.signature }))]));
        expect(v2.signaturesIn(data)).toEqual(items);
    });

    it('refuses what ethers would refuse, instead of writing garbage', () => {
        const [good] = anchors(1);
        expect(() => encodeCreateProposals(create, [{ ...good, id: '0x1234' }])).toThrow('item 0: id is not 32 bytes of hex');
        expect(() => encodeCreateProposals(create, [{ ...good, parties: ['0xnothex'] }])).toThrow('item 0: party 0 is not an address');
        expect(() => encodeCreateProposals(create, [{ ...good, deadline: 2n ** 64n }])).toThrow('does not fit a uint64');
        expect(() => encodeSubmitSignatures(submit, [{ ...signatures(1)[0], signature: '0xabc' }])).toThrow('item 0: signature is not 0x-prefixed hex bytes');
        expect(() => encodeSubmitSignatures(create, [])).toThrow('cannot encode createProposals');
        const v1 = new Interface(ENERGY_EXCHANGE.abi).getFunction('createProposal')!;
        expect(() => encodeCreateProposals(v1, [])).toThrow('cannot encode');
    });
});
