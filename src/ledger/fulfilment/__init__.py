"""The fulfilment worker: it drives every open upstream fulfilment by calling suppliers'
APIs (`connector`), with a breaker per supplier (`breaker`), and records what each answered
through the writer. It runs beside `ledger serve` or alone as `ledger fulfil run`."""
