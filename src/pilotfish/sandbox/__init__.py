"""pilotfish.sandbox"""
