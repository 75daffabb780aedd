// SPDX-License-Identifier: UNLICENSED
pragma solidity 0.8.37;

/// @title EnergyExchange
/// @notice Trade proposals between consortium members, anchored by hash only: the operator (owner)
/// creates a proposal naming its parties, the hashes of its documents and a deadline; each party
/// signs from its own account; the proposal completes when the last party signs before the deadline.
/// Everything here is readable by every node operator, so terms and documents stay off-chain.
contract EnergyExchange {
    struct Asset {
        bytes32 hash;
        string algorithm;
        string location;
    }

    enum Status {
        None,
        Open,
        Completed,
        Cancelled
    }

    uint256 private constant MIN_PARTIES = 2;
    uint256 private constant MAX_PARTIES = 8;
    uint256 private constant MAX_ASSETS = 16;

    /// @dev The header fits one slot (8+8+8+8+8+64+64 bits), so `sign` reads and writes one slot.
    /// Fixed-size arrays need no length slot (the counts live in the header) and unused
    /// entries cost nothing.
    struct Proposal {
        Status status;
        uint8 partyCount;
        uint8 signedMask; // bit i set: parties[i] has signed
        uint8 signatures;
        uint8 assetCount;
        uint64 deadline;
        uint64 createdAt;
        address[MAX_PARTIES] parties;
        Asset[MAX_ASSETS] assets;
    }

    address public owner;
    address public pendingOwner;

    mapping(bytes32 => Proposal) private _proposals;

    event OwnershipTransferStarted(address indexed previousOwner, address indexed newOwner);
    event OwnershipTransferred(address indexed previousOwner, address indexed newOwner);
    event ProposalCreated(bytes32 indexed id, address[] parties, uint64 deadline, uint256 assetCount);
    event ProposalSigned(bytes32 indexed id, address indexed party, uint8 signatures);
    event ProposalCompleted(bytes32 indexed id);
    event ProposalCancelled(bytes32 indexed id);

    error NotOwner(address caller);
    error NotPendingOwner(address caller);
    error ZeroAddress();
    error InvalidProposalId();
    error ProposalExists(bytes32 id);
    error ProposalNotFound(bytes32 id);
    error ProposalNotOpen(bytes32 id, uint8 status);
    error InvalidPartyCount(uint256 count);
    error DuplicateParty(address party);
    error NoAssets();
    error TooManyAssets(uint256 count);
    error InvalidAsset(uint256 index);
    error DeadlineInPast(uint64 deadline);
    error DeadlinePassed(bytes32 id, uint64 deadline);
    error NotAParty(bytes32 id, address account);
    error AlreadySigned(bytes32 id, address account);

    modifier onlyOwner() {
        if (msg.sender != owner) revert NotOwner(msg.sender);
        _;
    }

    constructor() {
        owner = msg.sender;
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

    function createProposal(bytes32 id, address[] calldata parties, Asset[] calldata assets, uint64 deadline)
        external
        onlyOwner
    {
        if (id == bytes32(0)) revert InvalidProposalId();
        Proposal storage p = _proposals[id];
        if (p.status != Status.None) revert ProposalExists(id);

        uint256 partyCount = parties.length;
        if (partyCount < MIN_PARTIES || partyCount > MAX_PARTIES) revert InvalidPartyCount(partyCount);
        for (uint256 i; i < partyCount; ++i) {
            address party = parties[i];
            if (party == address(0)) revert ZeroAddress();
            for (uint256 j; j < i; ++j) {
                if (parties[j] == party) revert DuplicateParty(party);
            }
            p.parties[i] = party;
        }

        uint256 assetCount = assets.length;
        if (assetCount == 0) revert NoAssets();
        if (assetCount > MAX_ASSETS) revert TooManyAssets(assetCount);
        for (uint256 i; i < assetCount; ++i) {
            Asset calldata asset = assets[i];
            if (asset.hash == bytes32(0) || bytes(asset.algorithm).length == 0) revert InvalidAsset(i);
            Asset storage stored = p.assets[i];
            stored.hash = asset.hash;
            stored.algorithm = asset.algorithm;
            // An empty location is left unwritten: it costs nothing and reads back as "".
            if (bytes(asset.location).length != 0) stored.location = asset.location;
        }

        if (deadline <= block.timestamp) revert DeadlineInPast(deadline);

        p.status = Status.Open;
        p.partyCount = uint8(partyCount);
        p.assetCount = uint8(assetCount);
        p.deadline = deadline;
        p.createdAt = uint64(block.timestamp);

        emit ProposalCreated(id, parties, deadline, assetCount);
    }

    function sign(bytes32 id) external {
        Proposal storage p = _proposals[id];
        Status status = p.status;
        if (status == Status.None) revert ProposalNotFound(id);
        if (status != Status.Open) revert ProposalNotOpen(id, uint8(status));
        if (block.timestamp > p.deadline) revert DeadlinePassed(id, p.deadline);

        uint256 index = _partyIndex(p, msg.sender);
        if (index == MAX_PARTIES) revert NotAParty(id, msg.sender);
        uint8 bit = uint8(1 << index);
        if (p.signedMask & bit != 0) revert AlreadySigned(id, msg.sender);

        uint8 signatures = p.signatures + 1;
        p.signedMask |= bit;
        p.signatures = signatures;
        bool completed = signatures == p.partyCount;
        if (completed) p.status = Status.Completed;

        emit ProposalSigned(id, msg.sender, signatures);
        if (completed) emit ProposalCompleted(id);
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

    function getProposal(bytes32 id)
        external
        view
        returns (
            uint8 status,
            uint64 deadline,
            uint64 createdAt,
            address[] memory parties,
            uint8 signatures,
            uint256 assetCount
        )
    {
        Proposal storage p = _proposals[id];
        if (p.status == Status.None) revert ProposalNotFound(id);
        uint256 count = p.partyCount;
        parties = new address[](count);
        for (uint256 i; i < count; ++i) parties[i] = p.parties[i];
        return (uint8(p.status), p.deadline, p.createdAt, parties, p.signatures, p.assetCount);
    }

    function getAsset(bytes32 id, uint256 index)
        external
        view
        returns (bytes32 hash, string memory algorithm, string memory location)
    {
        Proposal storage p = _proposals[id];
        if (p.status == Status.None) revert ProposalNotFound(id);
        if (index >= p.assetCount) revert InvalidAsset(index);
        Asset storage asset = p.assets[index];
        return (asset.hash, asset.algorithm, asset.location);
    }

    /// @notice False for an unknown proposal or an account that is not one of its parties.
    function hasSigned(bytes32 id, address account) external view returns (bool) {
        Proposal storage p = _proposals[id];
        uint256 index = _partyIndex(p, account);
        return index != MAX_PARTIES && p.signedMask & (1 << index) != 0;
    }

    function isCompleted(bytes32 id) external view returns (bool) {
        return _proposals[id].status == Status.Completed;
    }

    /// @notice 0 None (unknown id), 1 Open, 2 Completed, 3 Cancelled.
    function statusOf(bytes32 id) external view returns (uint8) {
        return uint8(_proposals[id].status);
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
