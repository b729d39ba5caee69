"""Sweeps: many architectures on several devices, counted and measured on a Ray cluster, into one results store.

`space` turns a search space argument into architectures, `store` keeps one row per architecture and device in
SQLite, `plan` says what a run still has to do, `work` is what a worker runs (count one architecture, measure one on
one device), `resources` names the Ray resources it asks for, `engine` schedules that work on Ray (imported only
there: the rest of shufflebench never needs Ray), and `results` reads a store back with each device's Pareto front.
Importing this package imports none of them.
"""
