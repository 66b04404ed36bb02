"""Campaigns: run directories, checkpoints and resume, signals, the final comparison and the summary.

:func:`run_campaign` and :func:`resume_campaign` (:mod:`.run`) drive any method of
:data:`evoticket.methods.METHODS` through the same lifecycle: :mod:`.rundir` (created whole),
:mod:`.lock` (one writer), :mod:`.checkpoint` (every generation, atomic), :mod:`.signals`
(Ctrl-C and SIGTERM), :mod:`.controls` (the lottery-ticket controls), :mod:`.ensemble` (the best few tickets
as one ensemble, ``campaign.ensemble``) and :mod:`.summary`.
"""

from __future__ import annotations

from evoticket.campaign.controls import CONTROLS, FinalComparison, compare_controls, control_tickets
from evoticket.campaign.recorder import RunRecorder
from evoticket.campaign.run import SAFE_ON_RESUME, CampaignResult, changed_keys, resume_campaign, run_campaign

__all__ = [
    "CONTROLS",
    "SAFE_ON_RESUME",
    "CampaignResult",
    "FinalComparison",
    "RunRecorder",
    "changed_keys",
    "compare_controls",
    "control_tickets",
    "resume_campaign",
    "run_campaign",
]
