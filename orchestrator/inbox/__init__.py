"""The operator's mailbox: new mail read over IMAP (`poll`), customers' emails remembered, replies tied to the runs
that sent what they answer (`records`)."""
