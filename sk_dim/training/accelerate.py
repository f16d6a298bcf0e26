"""Training through Hugging Face Accelerate, with skorch's ``AccelerateMixin``.

Imports no Hugging Face library itself: the accelerator is built by
:func:`sk_dim._runtime.resolve_runtime`, and its utilities are imported
where a distributed fit uses them.
"""

from __future__ import annotations

import torch
from skorch.hf import AccelerateMixin  # imports no Hugging Face library
from torch import Tensor

from .net import SelfSupervisedNet


class AcceleratedSelfSupervisedNet(AccelerateMixin, SelfSupervisedNet):
    """A :class:`SelfSupervisedNet` trained through Hugging Face Accelerate.

    skorch's ``AccelerateMixin`` prepares the module (wrapped in
    ``DistributedDataParallel`` when there are several processes) and both
    optimizers, wraps each step in ``accelerator.accumulate`` and unwraps the
    module at the end of training. On top of it:

    - backward passes go through ``accelerator.backward`` (loss scaling;
      the estimators refuse gradient accumulation, which would add the
      encoder's gradients to the discriminator's); mixed precision is the accelerator's
      (``Accelerator(mixed_precision=...)``): the net's runtime autocasts in
      float32 (:attr:`~sk_dim._runtime.Runtime.autocast_precision`);
    - ``device`` is the accelerator's device: batches and inference go where
      accelerate placed the module;
    - each process trains on its own shard of every epoch
      (:class:`DeviceBatches` with ``num_shards``); ``batch_size`` is per
      process, in-batch negatives come from the process's own batch, and
      gradients are averaged over the processes;
    - the prior discriminator's step does not go through the wrapped
      module's forward, so its gradients are averaged explicitly;
    - the module's ``set_gather`` receives ``accelerator.gather`` (CMC passes it
      to its contrast, so that every process applies every process's
      memory-bank updates).

    With a single process it trains exactly like :class:`SelfSupervisedNet`.
    :meth:`without_accelerator` returns the trained net without accelerate,
    for pickling and inference.
    """

    # Overridden where the mixin's methods assume a supervised skorch net.
    def _validate_params(self):
        # Skips the mixin's "device must be None" check: the device given is
        # the accelerator's own, so there is no second placement to conflict.
        SelfSupervisedNet._validate_params(self)

    def initialize_criterion(self):
        # The module computes its loss. A criterion module would be wrapped in
        # DistributedDataParallel, which refuses modules without parameters.
        self.criterion_ = None
        return self

    def initialize_module(self):
        super().initialize_module()
        if self.accelerator.num_processes > 1:
            self._bare_module().set_gather(self.accelerator.gather)
        return self

    def get_iterator(self, dataset, training=False):
        # accelerate shards DataLoaders only; DeviceBatches shards itself.
        batches = SelfSupervisedNet.get_iterator(self, dataset, training=training)
        if training:
            batches.num_shards = self.accelerator.num_processes
            batches.shard = self.accelerator.process_index
        return batches

    def _bare_module(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.module_)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        self.sync_buffers()
        return super().on_train_end(net, X=X, y=y, **kwargs)

    def sync_buffers(self) -> None:
        """Give every process process 0's buffers (batch-norm statistics)."""
        if self.accelerator.num_processes == 1:
            return
        from accelerate.utils import broadcast

        # DistributedDataParallel copies process 0's buffers to the others before
        # each forward, so the last step leaves them different: take process 0's,
        # so that every process ends with the same model.
        with torch.no_grad():
            for buffer in self.module_.buffers():
                buffer.copy_(broadcast(buffer, from_process=0))

    def _step(self, loss: Tensor, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        if optimizer is getattr(self, "optimizer_discriminator_", None):
            self._average_discriminator_gradients()
        optimizer.step()

    def _average_discriminator_gradients(self) -> None:
        accelerator = self.accelerator
        if accelerator.num_processes == 1 or not accelerator.sync_gradients:
            return
        for param in self._bare_module().discriminator.parameters():
            if param.grad is not None:
                param.grad = accelerator.reduce(param.grad, reduction="mean")

    def without_accelerator(self) -> SelfSupervisedNet:
        """A plain :class:`SelfSupervisedNet` holding the trained module and history.

        It pickles and transforms without accelerate (and without the
        accelerator's processes); its optimizers are new.
        """
        self._unwrap_accelerator()  # done already at the end of a complete fit
        self.module_.set_gather(None)
        accelerate_only = {"accelerator", "unwrap_after_train", "callbacks__print_log__sink"}
        params = {
            k: v
            for k, v in self.get_params(deep=False).items()
            if k not in accelerate_only and not k.startswith("_")
        }
        runtime = self.applied_runtime().without_accelerator()
        plain = SelfSupervisedNet(**{**params, "module": self.module_, "runtime": runtime})
        plain.initialize()
        plain.history_ = self.history_
        return plain


def without_accelerator(net: SelfSupervisedNet) -> SelfSupervisedNet:
    """``net`` without accelerate (see :meth:`AcceleratedSelfSupervisedNet.without_accelerator`)."""
    if isinstance(net, AcceleratedSelfSupervisedNet):
        return net.without_accelerator()
    return net
