"""Reference learning rates for LearningRateScheduleTests, as BasicSR's training loop produces them.

BasicSR (basicsr/train.py) calls model.update_learning_rate(current_iter) before every iteration and
base_model.update_learning_rate steps the schedulers only when current_iter > 1, so iteration i trains with the
rate at scheduler position i - 1. MultiStepRestartLR and CosineAnnealingRestartLR are BasicSR's
(basicsr/models/lr_scheduler.py, restarts left out); TrueCosineAnnealingLR is torch's CosineAnnealingLR.
Run with python3 (torch 1.13): prints the rate of iterations 1..N for each case.
"""
import math
from collections import Counter

import torch
from torch.optim.lr_scheduler import CosineAnnealingLR, _LRScheduler


class MultiStepRestartLR(_LRScheduler):
    def __init__(self, optimizer, milestones, gamma=0.1, restarts=(0,), restart_weights=(1,), last_epoch=-1):
        self.milestones = Counter(milestones)
        self.gamma = gamma
        self.restarts = restarts
        self.restart_weights = restart_weights
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        if self.last_epoch in self.restarts:
            weight = self.restart_weights[self.restarts.index(self.last_epoch)]
            return [group['initial_lr'] * weight for group in self.optimizer.param_groups]
        if self.last_epoch not in self.milestones:
            return [group['lr'] for group in self.optimizer.param_groups]
        return [group['lr'] * self.gamma**self.milestones[self.last_epoch] for group in self.optimizer.param_groups]


def get_position_from_periods(iteration, cumulative_period):
    for i, period in enumerate(cumulative_period):
        if iteration <= period:
            return i


class CosineAnnealingRestartLR(_LRScheduler):
    def __init__(self, optimizer, periods, restart_weights=(1,), eta_min=0, last_epoch=-1):
        self.periods = periods
        self.restart_weights = restart_weights
        self.eta_min = eta_min
        self.cumulative_period = [sum(self.periods[0:i + 1]) for i in range(0, len(self.periods))]
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        idx = get_position_from_periods(self.last_epoch, self.cumulative_period)
        current_weight = self.restart_weights[idx]
        nearest_restart = 0 if idx == 0 else self.cumulative_period[idx - 1]
        current_period = self.periods[idx]
        return [
            self.eta_min + current_weight * 0.5 * (base_lr - self.eta_min) *
            (1 + math.cos(math.pi * ((self.last_epoch - nearest_restart) / current_period)))
            for base_lr in self.base_lrs
        ]


def basicsr_loop(make, lr, total_iter):
    """The rate each iteration trains with, as basicsr/train.py + BaseModel.update_learning_rate."""
    opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=lr)
    scheduler = make(opt)
    rates = []
    for current_iter in range(1, total_iter + 1):
        if current_iter > 1:
            scheduler.step()
        rates.append(opt.param_groups[0]['lr'])
    return rates


cases = {
    'multistep [2], gamma 0.5, lr 1e-4 (C2-03)': basicsr_loop(lambda o: MultiStepRestartLR(o, [2], 0.5), 1e-4, 4),
    'cosine periods [4], eta_min 0, lr 1e-4 (C2-03)': basicsr_loop(lambda o: CosineAnnealingRestartLR(o, [4], eta_min=0), 1e-4, 4),
    'multistep [3, 6], gamma 0.5, lr 1e-2': basicsr_loop(lambda o: MultiStepRestartLR(o, [3, 6], 0.5), 1e-2, 8),
    'cosine periods [4, 6], weights [1, 0.5], eta_min 1e-3, lr 1': basicsr_loop(
        lambda o: CosineAnnealingRestartLR(o, [4, 6], [1, 0.5], eta_min=1e-3), 1.0, 10),
    'TrueCosineAnnealingLR T_max 4, eta_min 0, lr 1e-4': basicsr_loop(lambda o: CosineAnnealingLR(o, 4, eta_min=0), 1e-4, 10),
    'TrueCosineAnnealingLR T_max 4, eta_min 1e-5, lr 2e-4': basicsr_loop(lambda o: CosineAnnealingLR(o, 4, eta_min=1e-5), 2e-4, 10),
}
for name, rates in cases.items():
    print(name)
    print('  ' + ', '.join(repr(r) for r in rates))
