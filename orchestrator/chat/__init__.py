"""The chat front door: commands, intake, decisions, run control, knowledge, sign-in, behind `Operations`."""
