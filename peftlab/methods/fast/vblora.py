r"""VB-LoRA, speed-tuned: A and B assembled in one pass.

The reference (:meth:`peftlab.methods.vblora.VBLoRALinear.lora_matrices`) runs the top-k admixture once for
A's logits and once for B's (:func:`~peftlab.methods.vblora.assemble_A`,
:func:`~peftlab.methods.vblora.assemble_B`), as peft does. Here both sets of logit vectors are stacked into
one ``(rows_A + rows_B, N)`` matrix, so one top-k, one softmax and one gather serve both; the rows are then
cut and reshaped exactly as the reference's. Agreement (values and gradients) is ``tests/methods/test_fast.py``'s.
"""

from __future__ import annotations

import torch

from peftlab.methods.vblora import VBLoRALinear, topk_admixture

__all__ = ["FastVBLoRALinear"]


class FastVBLoRALinear(VBLoRALinear):
    """:class:`~peftlab.methods.vblora.VBLoRALinear` with A's and B's admixtures in one top-k call."""

    def lora_matrices(self, adapter_name: str = "default") -> tuple[torch.Tensor, torch.Tensor]:
        logits_A, logits_B = self.vblora_logits_A[adapter_name], self.vblora_logits_B[adapter_name]
        bank = self._bank(adapter_name)
        r, n = self.r[adapter_name], self.num_vectors[adapter_name]
        rows_A = logits_A.shape[0] * logits_A.shape[1]
        z = torch.cat([logits_A.reshape(rows_A, n), logits_B.reshape(-1, n)])
        u = topk_admixture(z, bank.to(z.dtype), self.topk[adapter_name])
        A = u[:rows_A].reshape(r, self.in_features)
        B = u[rows_A:].reshape(logits_B.shape[0], r, -1).transpose(1, 2).reshape(self.out_features, r)
        return A, B
