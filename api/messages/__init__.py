"""Patient messages beyond the calendar (issue 17): SMS texts and letters for each visit a
publication made new, changed or cancelled, sent through GOV.UK Notify or written to an outbox,
on the channels each patient prefers. See docs/messages.md.

Modules, one job each: `gsm` (GSM-7 and SMS fragments), `contacts` (the contacts CSV, in memory
only), `compose` (the facts of a visit a message tells), `sms` (the text), `letter` (the PDF),
`outbox` (atomic files), `notify` (the GOV.UK Notify client), `send` (a publication's messages
and their delivery status).
"""
