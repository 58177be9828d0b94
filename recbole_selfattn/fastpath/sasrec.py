"""SASRec's forward pass (Kang & McAuley, ICDM 2018, as RecBole's ``SASRec``) on the fast path.

RecBole embeds all ``MAX_ITEM_LIST_LENGTH`` columns, runs every layer over
every position and then reads the last item's position. Here the columns
after the batch's longest sequence are cut (they are padding, later than any
read position, and invisible under the causal mask), and the encoder's last
layer is computed for the read position only
(:func:`recbole_selfattn.fastpath.transformer.encode_last`).
"""

import torch

from recbole_selfattn.fastpath.dropout import dropout
from recbole_selfattn.fastpath.transformer import encode_last


def forward(model, item_seq, item_seq_len):
    """``SASRec.forward(item_seq, item_seq_len)``: the ``[B, d]`` sequence representations."""
    length = int(item_seq_len.max())
    item_seq = item_seq[:, :length]
    hidden = model.item_embedding(item_seq) + model.position_embedding.weight[:length]
    hidden = dropout(model.LayerNorm(hidden), model.dropout.p, model.training)
    return encode_last(model.trm_encoder, hidden, item_seq_len - 1)
