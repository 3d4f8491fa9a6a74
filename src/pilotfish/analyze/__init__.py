"""pilotfish.analyze"""
