r"""
AttRec
################################################

Reference:
    Shuai Zhang, Yi Tay, Lina Yao, Aixin Sun. "Next Item Recommendation with Self-Attention."
    arXiv:1808.06414, 2018 (as "... with Self-Attentive Metric Learning", AAAI 2019 workshop).

Reference code:
    https://github.com/cheungdaven/DeepRec (TensorFlow 1, ``models/seq_rec/AttRec.py``)
"""

import math

import torch
import torch.nn.functional as F
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.utils import InputType
from torch import nn

from recbole_selfattn.config import require
from recbole_selfattn.data.dataset import next_items_field
from recbole_selfattn.fastpath.dropout import Dropout
from recbole_selfattn.fastpath.embedding import Embedding


class AttRec(SequentialRecommender):
    r"""AttRec scores an item by a distance in one metric space (lower is closer):

    .. math::
        y(u, i) = \omega \, \lVert U_u - V_i \rVert^2 + (1 - \omega) \, \lVert m^u_t - X_i \rVert^2

    **Short-term intent** :math:`m^u_t` (self-attention over the user's last ``L`` items, a
    left-padded window whose most recent item sits at position ``L - 1``):

    .. math::
        TE(t, 2i) = \sin(t / 10000^{2i/d}), \quad TE(t, 2i+1) = \cos(t / 10000^{2i/d})

        Q' = \mathrm{ReLU}((X^u_t + TE) W_Q), \quad K' = \mathrm{ReLU}((X^u_t + TE) W_K)

        s = \mathrm{softmax}(\mathrm{mask}(Q' K'^\top / \sqrt{d})), \quad a = s X^u_t, \quad
        m^u_t = \mathrm{mean}_{\text{rows}}(a)

    The timing signal goes into query and key only; the value is the plain embedding
    (no projection, no timing signal). ``W_K = W_Q`` when ``share_qk`` (reference code).
    Padded window positions are masked as keys and left out of the mean, so padding never
    changes a score. Dropout (``dropout_prob``) acts on the ReLU outputs Q' and K'.
    ``diag_mask='before'`` masks the diagonal before the softmax (paper: an item does not
    attend to itself); ``'after'`` multiplies the softmax output by ``1 - I`` (reference code).
    A position with nothing else to attend to (a one-item history) gets ``a = 0``.

    ``target_table: separate`` (neither paper nor reference) scores the short-term
    distance against a second item table :math:`\tilde X`, :math:`\lVert m^u_t - \tilde X_i
    \rVert^2`, the window's values and queries still from ``X``. With the one table of the
    paper, :math:`m^u_t` mixes the window's own ``X`` rows, so the short-term score of ``j``
    after ``i`` is a similarity of the two rows, the same as ``i`` after ``j``.

    **Long-term preference**: user table ``U`` and long-term item table ``V`` (separate from
    the short-term table ``X``); they exist only when ``omega > 0``, so ``omega = 0`` (session
    data) needs no meaningful user ids.

    **Loss**: the ``T`` next items of each training sequence are positives ``i`` (field of
    :class:`~recbole_selfattn.data.dataset.AttRecDataset`, 0-padded and ignored where the
    sequence ends); each positive gets ``neg_samples`` negatives ``j`` drawn here, uniformly
    from all items but that sequence's positives and padding (torch's global RNG).
    ``loss_type: hinge`` (the paper, margin :math:`\gamma`):

    .. math::
        \mathcal{L} = \sum_{i} \sum_{j} [y(u,i) + \gamma - y(u,j)]_+ + \lambda \lVert\Theta\rVert^2

    ``loss_type: logsigmoid`` (what the released reference code trains: the distances
    themselves as logits, positives pulled towards distance 0, negatives pushed away;
    ``margin`` is unused):

    .. math::
        \mathcal{L} = \sum_{i} \Big( -\log(1 - \sigma(y(u,i))) - \sum_{j} \log \sigma(y(u,j)) \Big)
            + \lambda \lVert\Theta\rVert^2

    computed as :math:`\mathrm{softplus}(y) = -\log(1 - \sigma(y))` and
    :math:`\mathrm{softplus}(-y) = -\log \sigma(y)` (stable; the reference code adds
    :math:`10^{-10}` inside the logs instead).

    ``loss_type: ce`` (neither paper nor reference: every item a negative, as RecBole's
    CE-trained models; ``neg_samples`` and ``margin`` are unused), a softmax over the
    negated distances to all items but padding:

    .. math::
        \mathcal{L} = -\sum_{i} \log \frac{\exp(-y(u,i))}{\sum_{k} \exp(-y(u,k))}
            + \lambda \lVert\Theta\rVert^2

    Per batch: the loss sum of each sequence plus :math:`\lambda` times the squared norms of the
    rows of ``X``, ``V``, ``U`` (and ``X~``) it uses, averaged over the batch, plus
    :math:`\lambda (\lVert W_Q \rVert^2 + \lVert W_K \rVert^2)` (RecBole's ``EmbLoss``
    convention: only looked-up rows are regularised, so Adam does not shrink unseen rows).
    With ``norm_clip`` every row of ``X``, ``V``, ``U`` (and ``X~``) is projected onto the unit ball
    before each use (training and prediction), as the paper prescribes.

    Where the reference code differs, the paper is followed and the reference kept as an
    option or noted here: diagonal masked before the softmax (reference: after, option
    ``diag_mask``); norm clipping on (reference: off, option ``norm_clip``); hinge loss (the
    released code trains the log-sigmoid loss, its hinge line is commented out; option
    ``loss_type``); interleaved sin/cos timing signal as in the paper's equation (reference:
    tensor2tensor's concatenated halves); padded positions masked (reference: attends to
    padding). The model gets no negatives from RecBole's sampler, so it declares
    ``InputType.POINTWISE`` and requires ``train_neg_sample_args: ~``.
    """

    input_type = InputType.POINTWISE

    def __init__(self, config, dataset):
        super().__init__(config, dataset)

        require(config, "omega", lambda v: 0 <= v <= 1, "a number in [0, 1]")
        require(config, "margin", lambda v: v >= 0, "a number >= 0")
        # L >= 2: a window's item never attends to itself (the masked diagonal), so
        # the intent of a one-item window would always be 0
        require(config, "L", lambda v: isinstance(v, int) and 2 <= v <= self.max_seq_length,
                f"an integer in [2, MAX_ITEM_LIST_LENGTH={self.max_seq_length}] (an item never attends "
                "to itself, so a window of 1 has no short-term intent)")
        require(config, "T", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1")
        require(config, "neg_samples", lambda v: isinstance(v, int) and v >= 1, "an integer >= 1")
        require(config, "reg_weight", lambda v: v >= 0, "a number >= 0")
        require(config, "dropout_prob", lambda v: 0 <= v < 1, "a number in [0, 1)")
        require(config, "loss_type", lambda v: v in ("hinge", "logsigmoid", "ce"),
                "'hinge' (paper), 'logsigmoid' (reference code) or 'ce' (softmax over all items)")
        require(config, "target_table", lambda v: v in ("shared", "separate"),
                "'shared' (paper: targets scored against X) or 'separate' (a second item table)")
        require(config, "diag_mask", lambda v: v in ("before", "after"), "'before' (paper) or 'after' (reference code)")
        require(config, "train_neg_sample_args", lambda v: v["distribution"] == "none",
                "~ (AttRec samples its own negatives; set neg_samples instead)")

        # load parameters info
        self.embedding_size = config["embedding_size"]
        self.L = config["L"]
        self.T = config["T"]
        self.margin = config["margin"]
        self.omega = config["omega"]
        self.reg_weight = config["reg_weight"]
        self.neg_samples = config["neg_samples"]
        self.loss_type = config["loss_type"]
        self.mask_before_softmax = config["diag_mask"] == "before"
        self.norm_clip = config["norm_clip"]
        self.NEXT_ITEMS = next_items_field(config)

        # define layers
        self.item_embedding = Embedding(self.n_items, self.embedding_size, padding_idx=0)  # X
        self.query_proj = nn.Linear(self.embedding_size, self.embedding_size, bias=False)  # W_Q
        self.key_proj = self.query_proj if config["share_qk"] else (
            nn.Linear(self.embedding_size, self.embedding_size, bias=False)  # W_K
        )
        self.dropout = Dropout(config["dropout_prob"])
        self.register_buffer("time_embedding", self._timing_signal(self.L, self.embedding_size))
        self.target_embedding = self.item_embedding if config["target_table"] == "shared" else (
            Embedding(self.n_items, self.embedding_size, padding_idx=0)  # X~
        )
        self.metric_tables = [self.item_embedding]
        if self.target_embedding is not self.item_embedding:
            self.metric_tables.append(self.target_embedding)
        if self.omega > 0:
            self.user_embedding = Embedding(dataset.num(self.USER_ID), self.embedding_size)  # U
            self.long_item_embedding = Embedding(self.n_items, self.embedding_size, padding_idx=0)  # V
            self.metric_tables += [self.user_embedding, self.long_item_embedding]

        # parameters initialization
        self.apply(self._init_weights)

    def _init_weights(self, module):
        if isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, std=0.1)
            if module.padding_idx is not None:
                nn.init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)

    @staticmethod
    def _timing_signal(length, dim):
        """``TE[t, 2i] = sin(t / 10000^(2i/d))``, ``TE[t, 2i+1] = cos(t / 10000^(2i/d))``."""
        position = torch.arange(length, dtype=torch.float).unsqueeze(1)
        exponent = torch.arange(0, dim, 2, dtype=torch.float) / dim
        angle = position / torch.pow(10000.0, exponent)
        signal = torch.zeros(length, dim)
        signal[:, 0::2] = torch.sin(angle)
        signal[:, 1::2] = torch.cos(angle[:, : dim // 2])
        return signal

    @torch.no_grad()
    def _clip_norms(self):
        """Project every row of X, U, V (and X~) onto the unit ball (in place)."""
        if self.norm_clip:
            for table in self.metric_tables:
                table.weight.renorm_(p=2, dim=0, maxnorm=1.0)

    def _window(self, item_seq, item_seq_len):
        """The last ``L`` items, left-padded: ``[B, L]`` ids and ``[B, L]`` validity."""
        position = item_seq_len.unsqueeze(1) - self.L + torch.arange(self.L, device=item_seq.device)
        valid = position >= 0
        window = item_seq.gather(1, position.clamp(min=0)) * valid
        return window, valid

    def _attend(self, values, valid):
        """The attention ``s`` ``[B, L, L]`` over window embeddings ``values`` ``[B, L, d]``
        with validity ``valid`` ``[B, L]`` (rows: queries; padded rows are 0)."""
        timed = values + self.time_embedding
        hidden = torch.relu(self.query_proj(timed))
        # one product for Q' and K' when W_K = W_Q; each gets its own dropout mask
        key_hidden = hidden if self.key_proj is self.query_proj else torch.relu(self.key_proj(timed))
        query, key = self.dropout(hidden), self.dropout(key_hidden)
        logits = torch.matmul(query, key.transpose(-1, -2)) / math.sqrt(self.embedding_size)

        off_diagonal = ~torch.eye(self.L, dtype=torch.bool, device=values.device)
        allowed = valid.unsqueeze(1)  # [B, 1, L]: real keys only
        if self.mask_before_softmax:
            allowed = allowed & off_diagonal
        logits = logits.masked_fill(~allowed, torch.finfo(logits.dtype).min)
        # "* allowed" also zeroes rows without any allowed key (softmax would be uniform there)
        weights = torch.softmax(logits, dim=-1) * allowed
        if not self.mask_before_softmax:
            weights = weights * off_diagonal
        return weights * valid.unsqueeze(-1)  # padded queries contribute nothing

    def _intent(self, values, valid):
        """``m_t^u`` ``[B, d]``: the mean of ``s X_t^u`` over the real positions of the window."""
        # sum_rows(s X) = (column sums of s) X: a weighted sum of the L rows per sequence
        # (padded rows of s are already 0); elementwise, as L is small and a batch of
        # [1, L] x [L, d] products costs more than it computes
        column_sums = self._attend(values, valid).sum(dim=1)  # [B, L]
        attended = (column_sums.unsqueeze(-1) * values).sum(dim=1)
        return attended / valid.sum(dim=1, keepdim=True).clamp(min=1)

    def attention_weights(self, item_seq, item_seq_len):
        """The masked attention matrix ``s`` ``[B, L, L]`` (rows: queries; padded rows are 0)."""
        window, valid = self._window(item_seq, item_seq_len)
        return self._attend(self.item_embedding(window), valid)

    def forward(self, item_seq, item_seq_len):
        """The short-term intent ``m_t^u`` ``[B, d]``."""
        window, valid = self._window(item_seq, item_seq_len)
        return self._intent(self.item_embedding(window), valid)

    def _user(self, interaction):
        """``U_u`` ``[B, d]`` (``None`` when ``omega = 0``: no long-term tables)."""
        return self.user_embedding(interaction[self.USER_ID]) if self.omega > 0 else None

    @staticmethod
    def _square_norms(table):
        """``||row||^2`` of every row of ``table``, ``[N]``, which callers index with their
        ids (one pass over the ``[N, d]`` table, not over the ``[B, n, d]`` looked-up rows)."""
        return table.weight.pow(2).sum(-1)

    def _distances(self, seq_output, items, target_norms, user, long_norms):
        """``y(u, i)`` ``[B, n]`` of ``items`` ``[B, n]`` from the intent ``m`` ``[B, d]``, the
        items' squared norms ``[B, n]`` in the target table, ``U_u`` (:meth:`_user`) and the
        squared norms in ``V``."""
        y = (1 - self.omega) * self._square_distances(seq_output, self.target_embedding, items, target_norms)
        if self.omega > 0:
            y = y + self.omega * self._square_distances(user, self.long_item_embedding, items, long_norms)
        return y

    @staticmethod
    def _square_distances(a, table, ids, row_norms):
        """``||a_b - r_bk||^2`` ``[B, n]`` of ``a`` ``[B, d]`` to the rows ``r`` of ``ids`` ``[B, n]``
        in ``table``, whose squared norms are ``row_norms`` ``[B, n]``: ``||a||^2 - 2 a.r + ||r||^2``
        (the products by ``Embedding.dots``, without a ``[B, n, d]`` difference; the full
        ranking's :meth:`_all_square_distances` expands the same way)."""
        return a.pow(2).sum(-1, keepdim=True) - 2 * table.dots(ids, a) + row_norms

    def _sample_negatives(self, positives):
        """``[B, T, neg_samples]`` items drawn uniformly from ``1..n_items-1`` minus the row's
        ``positives`` ``[B, T]`` (0 = padding): draw a rank among the allowed items, then shift
        it past each excluded id in ascending order."""
        excluded, _ = positives.sort(dim=-1)
        distinct = excluded > 0
        distinct[:, 1:] &= excluded[:, 1:] != excluded[:, :-1]
        n_allowed = (self.n_items - 1 - distinct.sum(dim=-1)).view(-1, 1, 1)
        uniform = torch.rand(positives.size(0), self.T, self.neg_samples, device=positives.device)
        negatives = torch.minimum((uniform * n_allowed).long(), n_allowed - 1) + 1
        for k in range(excluded.size(1)):
            shift = distinct[:, k].view(-1, 1, 1) & (negatives >= excluded[:, k].view(-1, 1, 1))
            negatives = negatives + shift.long()
        return negatives

    def _ranking_loss(self, pos_distance, neg_distance, real):
        """The hinge or log-sigmoid sum over a batch's positives ``[B, T]`` and their
        negatives ``[B, T, neg_samples]``; ``real`` ``[B, T]`` is False for padded targets."""
        if self.loss_type == "hinge":
            per_positive = torch.relu(pos_distance.unsqueeze(-1) + self.margin - neg_distance).sum(-1)
        else:  # -log(1 - sigmoid(y_i)) - sum_j log sigmoid(y_j)
            per_positive = F.softplus(pos_distance) + F.softplus(-neg_distance).sum(-1)
        return (per_positive * real).sum()

    def _softmax_loss(self, seq_output, user, positives):
        """``loss_type: ce``: the summed cross-entropy of the positives ``[B, T]`` (0 =
        padding, skipped) under a softmax over ``-y`` to every item but padding."""
        logits = -self._all_distances(seq_output, user)
        logits[:, 0] = -torch.inf  # the padding item is never a candidate
        log_probability = torch.log_softmax(logits, dim=-1).gather(1, positives)
        return -log_probability.masked_fill(positives == 0, 0).sum()  # not "* real": -inf * 0 is nan

    def calculate_loss(self, interaction):
        self._clip_norms()
        item_seq = interaction[self.ITEM_SEQ]
        batch_size = item_seq.size(0)
        positives = interaction[self.NEXT_ITEMS]  # [B, T], 0 where the sequence ended
        window, valid = self._window(item_seq, interaction[self.ITEM_SEQ_LEN])
        # the targets and the (sampled) negatives, scored and regularised together
        targets = positives
        if self.loss_type != "ce":
            negatives = self._sample_negatives(positives)  # [B, T, n]
            targets = torch.cat([positives, negatives.flatten(1)], dim=1)
        seq_output = self._intent(self.item_embedding(window), valid)
        user = self._user(interaction)
        item_norms = self._square_norms(self.item_embedding)
        shared = self.target_embedding is self.item_embedding  # X's norms once
        target_norms = (item_norms if shared else self._square_norms(self.target_embedding))[targets]
        long_norms = self._square_norms(self.long_item_embedding)[targets] if self.omega > 0 else None
        if self.loss_type == "ce":
            ranking = self._softmax_loss(seq_output, user, positives)
        else:
            distance = self._distances(seq_output, targets, target_norms, user, long_norms)
            pos_distance = distance[:, : self.T]
            neg_distance = distance[:, self.T :].view(batch_size, self.T, self.neg_samples)
            ranking = self._ranking_loss(pos_distance, neg_distance, positives > 0)

        reg = item_norms[window].sum() + target_norms.sum()
        if self.omega > 0:
            reg = reg + user.pow(2).sum() + long_norms.sum()
        reg = reg / batch_size + self.query_proj.weight.pow(2).sum()
        if self.key_proj is not self.query_proj:
            reg = reg + self.key_proj.weight.pow(2).sum()
        return ranking / batch_size + self.reg_weight * reg

    def predict(self, interaction):
        self._clip_norms()
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        items = interaction[self.ITEM_ID].unsqueeze(1)
        target_norms = self._square_norms(self.target_embedding)[items]
        long_norms = self._square_norms(self.long_item_embedding)[items] if self.omega > 0 else None
        distance = self._distances(seq_output, items, target_norms, self._user(interaction), long_norms)
        return -distance.squeeze(1)

    def full_sort_predict(self, interaction):
        self._clip_norms()
        seq_output = self.forward(interaction[self.ITEM_SEQ], interaction[self.ITEM_SEQ_LEN])
        return -self._all_distances(seq_output, self._user(interaction))

    def _all_distances(self, seq_output, user):
        """``y(u, i)`` ``[B, n_items]`` to every item, from the intent ``[B, d]`` and ``U_u``
        ``[B, d]`` (``None`` when ``omega = 0``)."""
        y = (1 - self.omega) * self._all_square_distances(seq_output, self.target_embedding.weight)
        if self.omega > 0:
            y = y + self.omega * self._all_square_distances(user, self.long_item_embedding.weight)
        return y

    @staticmethod
    def _all_square_distances(a, b):
        """``||a_r - b_i||^2`` for all rows of ``a`` ``[B, d]`` and ``b`` ``[N, d]``, as
        ``||a||^2 - 2 a b^T + ||b||^2``."""
        return a.pow(2).sum(-1, keepdim=True) - 2 * torch.matmul(a, b.t()) + b.pow(2).sum(-1)
