"""The tree, its proofs and the offline verifier, against a plain recursive RFC 9162 tree."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from audit.merkle import (
    CompactRange,
    consistency_spans,
    frontier_nodes,
    inclusion_spans,
    largest_power_below,
    span_hashes,
    subtree_root,
)
from audit.offline_verifier import empty_root, leaf_hash, node_hash, verify_consistency, verify_inclusion

Node = tuple[int, int]


def mth(leaves: list[bytes]) -> bytes:
    """RFC 9162 §2.1.1, literally."""
    if not leaves:
        return empty_root()
    if len(leaves) == 1:
        return leaves[0]
    k = largest_power_below(len(leaves))
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def grown(n: int) -> tuple[list[bytes], dict[Node, bytes], CompactRange]:
    """n leaves, every complete node the range made (as the store keeps them), the range."""
    leaves = [leaf_hash(f"event {i}".encode()) for i in range(n)]
    nodes: dict[Node, bytes] = {}
    tree = CompactRange()
    for i, h in enumerate(leaves):
        nodes[(0, i)] = h
        made: list[tuple[int, int, bytes]] = []
        tree.append(h, made)
        nodes.update({(level, index): node for level, index, node in made})
    return leaves, nodes, tree


def flip(h: bytes, bit: int) -> bytes:
    return bytes([h[0] ^ (1 << (bit % 8))]) + h[1:]


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 600))
def test_the_range_and_stored_nodes_give_the_rfc_root(n: int) -> None:
    leaves, nodes, tree = grown(n)
    assert tree.root() == mth(leaves)
    restored = CompactRange(n, [nodes[node] for node in frontier_nodes(n)])
    assert restored.root() == mth(leaves)
    if n:
        assert span_hashes([(0, n)], lambda wanted: {w: nodes[w] for w in wanted}) == [mth(leaves)]


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 6), st.integers(0, 3))
def test_whole_subtrees_appended_at_once_match_leaf_by_leaf(level: int, chunks: int) -> None:
    width = 1 << level
    leaves, _, by_leaf = grown(width * chunks + width)
    tree = CompactRange()
    for c in range(chunks + 1):
        tree.append(subtree_root(leaves[c * width:(c + 1) * width]), level=level)
    assert tree.size == by_leaf.size and tree.root() == by_leaf.root()


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_inclusion_proofs_verify_and_a_tampered_leaf_fails(data: st.DataObject) -> None:
    size = data.draw(st.integers(1, 700), label="tree size")
    index = data.draw(st.integers(0, size - 1), label="leaf index")
    leaves, nodes, _ = grown(size)
    proof = span_hashes(inclusion_spans(index, size), lambda wanted: {w: nodes[w] for w in wanted})
    root = mth(leaves)
    assert verify_inclusion(index, size, leaves[index], proof, root)
    bit = data.draw(st.integers(0, 7), label="bit")
    assert not verify_inclusion(index, size, flip(leaves[index], bit), proof, root)
    if proof:
        which = data.draw(st.integers(0, len(proof) - 1), label="proof entry")
        bad = [*proof[:which], flip(proof[which], bit), *proof[which + 1:]]
        assert not verify_inclusion(index, size, leaves[index], bad, root)
    if size > 1:
        other = data.draw(st.integers(0, size - 1).filter(lambda i: i != index), label="other index")
        assert not verify_inclusion(other, size, leaves[index], proof, root)


@settings(max_examples=80, deadline=None)
@given(st.data())
def test_consistency_proofs_verify_and_a_tampered_leaf_fails(data: st.DataObject) -> None:
    size2 = data.draw(st.integers(1, 700), label="second size")
    size1 = data.draw(st.integers(1, size2), label="first size")
    leaves, nodes, _ = grown(size2)
    proof = span_hashes(consistency_spans(size1, size2), lambda w: {n: nodes[n] for n in w}) if size1 < size2 else []
    root1, root2 = mth(leaves[:size1]), mth(leaves)
    assert verify_consistency(size1, size2, root1, root2, proof)
    changed = data.draw(st.integers(0, size2 - 1), label="tampered leaf")
    forked = [*leaves[:changed], flip(leaves[changed], 1), *leaves[changed + 1:]]
    if changed < size1:  # the old tree's root no longer matches either
        assert not verify_consistency(size1, size2, mth(forked[:size1]), root2, proof)
    assert not verify_consistency(size1, size2, root1, mth(forked), proof)
