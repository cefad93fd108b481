"""Custody: withdrawals leaving the vaults for a blockchain, as a pure core.

`withdrawals` holds Peatio's withdrawal state machine as a table, the money each of its
transitions moves (as ledger legs and postings), and the per-currency fees and limits.
`chain` holds the `Chain` protocol a background worker submits withdrawals to, and a
deterministic `SimulatedChain` for tests and simulation. No I/O, no clock of their own.
"""
