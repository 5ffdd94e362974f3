"""The model's structure: one walk over its layers, in order, names matching its parameters."""

import npixelcnn as npc


def test_the_model_walk_names_every_leaf_layer_once_in_order():
    model = npc.PixelCNN(levels=4, hidden=4, blocks=2, head=8, seed=0)
    names = [name for name, _ in model.named_leaves()]
    assert names[:2] == ["input_conv", "blocks.0.relu1"] and names[-1] == "out"
    assert len(names) == len(set(names)) == 1 + 2 * 6 + 5
    # Every parameter belongs to exactly one leaf, under the leaf's dotted name.
    owned = sorted(f"{name}.{key}" for name, leaf in model.named_leaves() for key in leaf.params)
    assert owned == sorted(model.params)
