"""Knowledge distillation (torch): FSF-LD feature sharing and the baselines it is compared with."""
