"""simulators: stand-ins for the third parties the ledger talks to, shipped with the product.

`simulators.upstream` is a recharge supplier speaking the protocol of docs/upstream.md. The
package is written from that document alone, as a supplier would: it imports nothing from the
ledger, so the ledger's connector and this simulator can only agree through the document."""
