// SPDX-License-Identifier: UNLICENSED
pragma solidity 0.8.37;

/// @title EnergyExchangeV2
/// @notice Trade proposals whose parties sign the terms themselves. The operator (owner) anchors
/// each proposal with the EIP-712 hash of its terms (`hashStruct` of the `Proposal` typed data:
/// parties, product, quantity, price, delivery window, document hashes, deadline), its parties and
/// its deadline; each party signs the terms' EIP-712 digest under this contract's domain with its
/// own key, and anyone may submit the signature. A signature over other terms, another proposal,
/// another chain or another contract recovers another address and is refused. Proposals and
/// signatures go in batches: an item that does not hold is skipped with an event naming the
/// error it would have reverted with, and the rest of the batch stands.
contract EnergyExchangeV2 {
    enum Status {
        None,
        Open,
        Completed,
        Cancelled
    }

    uint256 private constant MIN_PARTIES = 2;
    uint256 private constant MAX_PARTIES = 8;
    /// @dev secp256k1n / 2: a signature with a higher s is the malleable twin of a valid one (EIP-2).
    uint256 private constant HALF_ORDER = 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0;
    bytes32 private constant DOMAIN_TYPEHASH = keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)");
    bytes32 private constant NAME_HASH = keccak256("Flexchange EnergyExchange");
    bytes32 private constant VERSION_HASH = keccak256("2");

    /// @dev The header fits one slot, so recording a signature reads and writes one slot.
    struct Proposal {
        Status status;
        uint8 partyCount;
        uint8 signedMask; // bit i set: parties[i] has signed
        uint8 signatures;
        uint64 deadline;
        uint64 createdAt;
        bytes32 termsHash;
        address[MAX_PARTIES] parties;
    }

    /// @notice A proposal to anchor: its id, the EIP-712 hash of its terms, its parties, its deadline.
    struct NewProposal {
        bytes32 id;
        bytes32 termsHash;
        address[] parties;
        uint64 deadline;
    }

    /// @notice A party's signature of a proposal's terms (65 bytes: r, s, v).
    struct PartySignature {
        bytes32 id;
        address party;
        bytes signature;
    }

    address public owner;
    address public pendingOwner;

    mapping(bytes32 => Proposal) private _proposals;

    uint256 private immutable _chainId;
    bytes32 private immutable _domainSeparator;

    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event ProposalCreated(bytes32 indexed id, address[] parties, uint64 deadline, bytes32 termsHash);
    event ProposalSigned(bytes32 indexed id, address indexed party, uint8 signatures);
    event ProposalCompleted(bytes32 indexed id);
    event ProposalCancelled(bytes32 indexed id);
    /// @notice A proposal of a batch that was not anchored; `reason` is the custom error it would have reverted with.
    event ProposalSkipped(bytes32 indexed id, uint256 index, bytes reason);
    /// @notice A signature of a batch that was not recorded; `reason` is the custom error it would have reverted with.
    event SignatureSkipped(bytes32 indexed id, address indexed party, uint256 index, bytes reason);

    error NotOwner(address caller);
    error NotPendingOwner(address caller);
    error ZeroAddress();
    error InvalidProposalId();
    error InvalidTermsHash(bytes32 id);
    error ProposalExists(bytes32 id);
    error ProposalNotFound(bytes32 id);
    error ProposalNotOpen(bytes32 id, uint8 status);
    error InvalidPartyCount(uint256 count);
    error DuplicateParty(address party);
    error DeadlineInPast(uint64 deadline);
    error DeadlinePassed(bytes32 id, uint64 deadline);
    error NotAParty(bytes32 id, address account);
    error AlreadySigned(bytes32 id, address account);
    error MalformedSignature(bytes32 id, address party);
    error WrongSigner(bytes32 id, address party, address recovered);

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    constructor() {
        owner = msg.sender;
        _chainId = block.chainid;
        _domainSeparator = _buildDomainSeparator();
        emit OwnershipTransferred(address(0), msg.sender);
    }

    // ---- ownership (two-step, so a mistyped address cannot lock the operator out) ----

    function transferOwnership(address newOwner) external onlyOwner {
        if (newOwner == address(0)) revert ZeroAddress();
        pendingOwner = newOwner;
        emit OwnershipTransferStarted(msg.sender, newOwner);
    }

    function acceptOwnership() external {
        if (msg.sender != pendingOwner) revert NotPendingOwner(msg.sender);
        address previous = owner;
        owner = msg.sender;
        delete pendingOwner;
        emit OwnershipTransferred(previous, msg.sender);
    }

    // ---- proposals ----

    /// @notice Anchors a batch of proposals; returns how many were anchored (the others are skipped with `ProposalSkipped`).
    function createProposals(NewProposal[] calldata batch) external onlyOwner returns (uint256 created) {
        for (uint256 i; i < batch.length; ++i) {
            bytes memory reason = _create(batch[i]);
            if (reason.length == 0) ++created;
            else emit ProposalSkipped(batch[i].id, i, reason);
        }
    }

    /// @notice Records a batch of parties' signatures, from anyone; returns how many were recorded (the others are skipped with `SignatureSkipped`).
    function submitSignatures(PartySignature[] calldata batch) external returns (uint256 recorded) {
        for (uint256 i; i < batch.length; ++i) {
            PartySignature calldata item = batch[i];
            bytes memory reason = _sign(item);
            if (reason.length == 0) ++recorded;
            else emit SignatureSkipped(item.id, item.party, i, reason);
        }
    }

    /// @notice Closes an open proposal, including one whose deadline has passed (that is how it expires).
    function cancelProposal(bytes32 id) external onlyOwner {
        Proposal storage p = _proposals[id];
        Status status = p.status;
        if (status == Status.None) revert ProposalNotFound(id);
        if (status != Status.Open) revert ProposalNotOpen(id, uint8(status));
        p.status = Status.Cancelled;
        emit ProposalCancelled(id);
    }

    // ---- views ----

    /// @notice The EIP-712 domain separator: name "Flexchange EnergyExchange", version "2", this chain, this contract.
    function domainSeparator() public view returns (bytes32) {
        return block.chainid == _chainId ? _domainSeparator : _buildDomainSeparator();
    }

    /// @notice The digest each party signs for proposal `id`: keccak256(0x1901 ‖ domainSeparator ‖ termsHash).
    function signingDigest(bytes32 id) public view returns (bytes32) {
        Proposal storage p = _proposals[id];
        if (p.status == Status.None) revert ProposalNotFound(id);
        return _digest(p.termsHash);
    }

    function getProposal(bytes32 id)
        external
        view
        returns (uint8 status, uint64 deadline, uint64 createdAt, address[] memory parties, uint8 signatures, bytes32 termsHash)
    {
        Proposal storage p = _proposals[id];
        if (p.status == Status.None) revert ProposalNotFound(id);
        uint256 count = p.partyCount;
        parties = new address[](count);
        for (uint256 i; i < count; ++i) parties[i] = p.parties[i];
        return (uint8(p.status), p.deadline, p.createdAt, parties, p.signatures, p.termsHash);
    }

    /// @notice False for an unknown proposal or an account that is not one of its parties.
    function hasSigned(bytes32 id, address account) external view returns (bool) {
        Proposal storage p = _proposals[id];
        uint256 index = _partyIndex(p, account);
        return index != MAX_PARTIES && p.signedMask & (1 << index) != 0;
    }

    /// @notice 0 None (unknown id), 1 Open, 2 Completed, 3 Cancelled.
    function statusOf(bytes32 id) external view returns (uint8) {
        return uint8(_proposals[id].status);
    }

    // ---- internals: each returns the custom error an item would revert with, empty when it holds ----

    function _create(NewProposal calldata n) private returns (bytes memory) {
        bytes32 id = n.id;
        if (id == bytes32(0)) return abi.encodeWithSelector(InvalidProposalId.selector);
        if (n.termsHash == bytes32(0)) return abi.encodeWithSelector(InvalidTermsHash.selector, id);
        Proposal storage p = _proposals[id];
        if (p.status != Status.None) return abi.encodeWithSelector(ProposalExists.selector, id);
        uint256 partyCount = n.parties.length;
        if (partyCount < MIN_PARTIES || partyCount > MAX_PARTIES) return abi.encodeWithSelector(InvalidPartyCount.selector, partyCount);
        for (uint256 i; i < partyCount; ++i) {
            address party = n.parties[i];
            if (party == address(0)) return abi.encodeWithSelector(ZeroAddress.selector);
            for (uint256 j; j < i; ++j) {
                if (n.parties[j] == party) return abi.encodeWithSelector(DuplicateParty.selector, party);
            }
        }
        if (n.deadline <= block.timestamp) return abi.encodeWithSelector(DeadlineInPast.selector, n.deadline);

        for (uint256 i; i < partyCount; ++i) p.parties[i] = n.parties[i];
        p.status = Status.Open;
        p.partyCount = uint8(partyCount);
        p.deadline = n.deadline;
        p.createdAt = uint64(block.timestamp);
        p.termsHash = n.termsHash;
        emit ProposalCreated(id, n.parties, n.deadline, n.termsHash);
        return "";
    }

    function _sign(PartySignature calldata item) private returns (bytes memory) {
        bytes32 id = item.id;
        Proposal storage p = _proposals[id];
        Status status = p.status;
        if (status == Status.None) return abi.encodeWithSelector(ProposalNotFound.selector, id);
        if (status != Status.Open) return abi.encodeWithSelector(ProposalNotOpen.selector, id, uint8(status));
        if (block.timestamp > p.deadline) return abi.encodeWithSelector(DeadlinePassed.selector, id, p.deadline);
        uint256 index = _partyIndex(p, item.party);
        if (index == MAX_PARTIES) return abi.encodeWithSelector(NotAParty.selector, id, item.party);
        uint8 bit = uint8(1 << index);
        if (p.signedMask & bit != 0) return abi.encodeWithSelector(AlreadySigned.selector, id, item.party);
        (bool wellFormed, address recovered) = _recover(_digest(p.termsHash), item.signature);
        if (!wellFormed) return abi.encodeWithSelector(MalformedSignature.selector, id, item.party);
        if (recovered != item.party) return abi.encodeWithSelector(WrongSigner.selector, id, item.party, recovered);

        uint8 signatures = p.signatures + 1;
        p.signedMask |= bit;
        p.signatures = signatures;
        bool completed = signatures == p.partyCount;
        if (completed) p.status = Status.Completed;
        emit ProposalSigned(id, item.party, signatures);
        if (completed) emit ProposalCompleted(id);
        return "";
    }

    /// @dev 65 bytes (r, s, v), s in the lower half of the curve order and v 27 or 28: one valid
    /// form per signature (no malleable twin); ecrecover's zero address is never a party.
    function _recover(bytes32 digest, bytes calldata signature) private pure returns (bool wellFormed, address recovered) {
        if (signature.length != 65) return (false, address(0));
        bytes32 r;
        bytes32 s;
        uint8 v;
        assembly {
            r := calldataload(signature.offset)
            s := calldataload(add(signature.offset, 32))
            v := byte(0, calldataload(add(signature.offset, 64)))
        }
        if (uint256(s) > HALF_ORDER || (v != 27 && v != 28)) return (false, address(0));
        recovered = ecrecover(digest, v, r, s);
        return (recovered != address(0), recovered);
    }

    function _digest(bytes32 termsHash) private view returns (bytes32) {
        return keccak256(abi.encodePacked("\x19\x01", domainSeparator(), termsHash));
    }

    function _buildDomainSeparator() private view returns (bytes32) {
        return keccak256(abi.encode(DOMAIN_TYPEHASH, NAME_HASH, VERSION_HASH, block.chainid, address(this)));
    }

    /// @dev The index of `account` among the parties, or MAX_PARTIES if it is not one (at most 8 reads).
    function _partyIndex(Proposal storage p, address account) private view returns (uint256) {
        uint256 count = p.partyCount;
        for (uint256 i; i < count; ++i) {
            if (p.parties[i] == account) return i;
        }
        return MAX_PARTIES;
    }
}
